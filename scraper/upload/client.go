// Package upload sends snapshots from the scraper's outbox to the server with
// the project's retry policy (1 attempt + 3 retries at 10 s, 20 s, 40 s,
// go-retry, a new backoff per snapshot, 429 honours Retry-After), reports
// each scrape's outcome, and keeps the sync statistics that
// `usage-scraper status` shows.
package upload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/claude-usage/widget/shared"
)

// The retry policy, the same for every snapshot.
const (
	DefaultAttemptTimeout = 10 * time.Second
	BaseDelay             = 10 * time.Second
	MaxRetries            = 3
	// MaxRetryAfter bounds how long one snapshot waits for a 429. A server
	// asking for more is told "later" by leaving the snapshot in the outbox
	// for the next cycle instead of stalling the scraper.
	MaxRetryAfter = 2 * time.Minute
	// Status reports are a convenience: one quick retry, then give up.
	statusRetries    = 1
	statusRetryDelay = 2 * time.Second
	// maxResponseBody bounds what is read from any response.
	maxResponseBody = 64 << 10
	verboseBodyMax  = 2048
)

// Client posts snapshots and scraper statuses. Zero values of the optional
// fields take defaults.
type Client struct {
	ServerURL  string // e.g. http://127.0.0.1:8080
	APIKey     string // sent as X-API-Key, never logged
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Sleep, when set, performs every wait between attempts in place of
	// go-retry's timer. It exists for tests against a real server process,
	// which a testing/synctest bubble cannot hold (they scale the waits
	// down); everything else leaves it nil.
	Sleep func(ctx context.Context, d time.Duration) error
	// Verbose logs request and response detail (SYNC_VERBOSE), never the key.
	Verbose bool
	// AttemptTimeout bounds each attempt (DefaultAttemptTimeout).
	AttemptTimeout time.Duration
	// Tracker, when set, records every sync and logs the statistics.
	Tracker *Tracker
}

// Error is a failed Send or ReportStatus: the category of the last attempt
// decides what the caller does with the snapshot.
type Error struct {
	Category  shared.Category
	Attempts  int
	Status    int    // HTTP status of the last attempt; 0 without a response
	RequestID string // the server's X-Request-ID of the last attempt
	// NotUsageServer is set when the last answer did not come from a
	// usage-server (errors.Is(err, ErrNotUsageServer) says the same).
	NotUsageServer bool
	Err            error
}

func (e *Error) Error() string {
	return fmt.Sprintf("sync: %s after %d attempt(s): %v", e.Category, e.Attempts, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// CategoryOf is the category of a Send error; CategoryNone for nil.
func CategoryOf(err error) shared.Category {
	if err == nil {
		return shared.CategoryNone
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Category
	}
	return shared.Classify(0, err)
}

// outcome is one attempt's result.
type outcome struct {
	result     shared.PostResult
	status     int
	category   shared.Category
	retryAfter time.Duration
	requestID  string
	replayed   bool
	foreign    bool // the answer did not come from a usage-server
	duration   time.Duration
	err        error
}

func (c *Client) logger() *slog.Logger {
	l := c.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return l.With("component", "sync")
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return defaultHTTPClient
}

// defaultHTTPClient does not follow redirects: a redirected POST turns into
// a GET and would look like success to nobody.
var defaultHTTPClient = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func (c *Client) attemptTimeout() time.Duration {
	if c.AttemptTimeout > 0 {
		return c.AttemptTimeout
	}
	return DefaultAttemptTimeout
}

func (c *Client) url(path string) string {
	return strings.TrimRight(c.ServerURL, "/") + path
}

// Send posts one snapshot with Idempotency-Key id, retrying transient
// failures per the policy. A returned *Error says whether the snapshot may
// be retried later (Category.Retryable) or must not be (AUTH, VALIDATION,
// NOT_FOUND).
func (c *Client) Send(ctx context.Context, id string, snap shared.Snapshot) (shared.PostResult, error) {
	log := c.logger().With("outboxId", id)
	body, err := json.Marshal(snap)
	if err != nil {
		return shared.PostResult{}, &Error{Category: shared.CategoryValidation, Err: fmt.Errorf("encoding snapshot: %w", err)}
	}
	start := time.Now()
	attempts, last, err := c.do(ctx, log, retry.WithMaxRetries(MaxRetries, retry.NewExponential(BaseDelay)),
		func(ctx context.Context, n int) outcome {
			return c.post(ctx, log, n, shared.PathUsage, id, body)
		})
	total := time.Now().Sub(start)
	if err == nil {
		log.Info("snapshot synced", "attempts", attempts, "durationMs", total.Milliseconds(),
			"version", last.result.Version, "id", last.result.ID, "replayed", last.replayed, "requestId", last.requestID)
	} else {
		log.Warn("snapshot not synced; it stays in the outbox", "attempts", attempts, "durationMs", total.Milliseconds(),
			"category", string(CategoryOf(err)), "error", err.Error(), "requestId", last.requestID)
	}
	if c.Tracker != nil && ctx.Err() == nil {
		st := c.Tracker.RecordSync(SyncRecord{At: start, OK: err == nil, Attempts: attempts,
			DurationMs: total.Milliseconds(), Category: CategoryOf(err), NotUsageServer: errors.Is(err, ErrNotUsageServer)}, errMessage(err))
		log.Info("sync stats", st.LogAttrs()...)
	}
	return last.result, err
}

func errMessage(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// do runs attempt under go-retry with backoff b and returns the attempt
// count, the last outcome and a *Error on failure. A 429's Retry-After
// stretches the wait when it is longer than the backoff's.
func (c *Client) do(ctx context.Context, log *slog.Logger, b retry.Backoff, attempt func(context.Context, int) outcome) (int, outcome, error) {
	var (
		n      int
		last   outcome
		gaveUp string
	)
	waits := retry.BackoffFunc(func() (time.Duration, bool) {
		d, stop := b.Next()
		if !stop && last.category == shared.CategoryRateLimited && last.retryAfter > d {
			if last.retryAfter > MaxRetryAfter {
				stop, gaveUp = true, fmt.Sprintf("Retry-After %s exceeds %s", last.retryAfter, MaxRetryAfter)
			} else {
				d = last.retryAfter
			}
		}
		if stop {
			d = 0
		}
		c.logAttempt(log, n, last, d, !stop)
		if stop || c.Sleep == nil {
			return d, stop
		}
		// The hook has done the wait (or seen ctx end, which go-retry
		// checks before the next attempt).
		_ = c.Sleep(ctx, d)
		return 0, false
	})
	_, err := retry.DoValue(ctx, waits, func(ctx context.Context) (struct{}, error) {
		n++
		last = attempt(ctx, n)
		switch {
		case last.err == nil:
			c.logAttempt(log, n, last, 0, false)
			return struct{}{}, nil
		case ctx.Err() != nil || !last.category.Retryable():
			c.logAttempt(log, n, last, 0, false)
			return struct{}{}, last.err
		}
		return struct{}{}, retry.RetryableError(last.err)
	})
	if err == nil {
		return n, last, nil
	}
	cat := last.category
	if ctx.Err() != nil {
		// The caller stopped us (shutdown): retryable later, nothing lost.
		cat, err = shared.CategoryNetwork, fmt.Errorf("%w (stopped: %v)", errOr(last.err, err), context.Cause(ctx))
	} else if gaveUp != "" {
		err = fmt.Errorf("%w (%s)", last.err, gaveUp)
	} else if last.err != nil {
		err = last.err
	}
	return n, last, &Error{Category: cat, Attempts: n, Status: last.status, RequestID: last.requestID, NotUsageServer: last.foreign, Err: err}
}

func errOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (c *Client) logAttempt(log *slog.Logger, n int, o outcome, delay time.Duration, willRetry bool) {
	cat := string(o.category)
	level := slog.LevelWarn
	if o.err == nil {
		cat, level = "OK", slog.LevelInfo
	}
	attrs := []any{"attempt", n, "status", o.status, "category", cat, "durationMs", o.duration.Milliseconds(),
		"delayMs", delay.Milliseconds(), "retry", willRetry, "requestId", o.requestID}
	if o.retryAfter > 0 {
		attrs = append(attrs, "retryAfterMs", o.retryAfter.Milliseconds())
	}
	if o.err != nil {
		attrs = append(attrs, "error", o.err.Error())
	}
	log.Log(context.Background(), level, "sync attempt", attrs...)
}

// post makes one POST of body to path with its own timeout.
func (c *Client) post(ctx context.Context, log *slog.Logger, n int, path, idemKey string, body []byte) outcome {
	actx, cancel := context.WithTimeout(ctx, c.attemptTimeout())
	defer cancel()
	start := time.Now()
	o := c.roundTrip(actx, log, n, path, idemKey, body)
	o.duration = time.Now().Sub(start)
	return o
}

func (c *Client) roundTrip(ctx context.Context, log *slog.Logger, n int, path, idemKey string, body []byte) outcome {
	u := c.url(path)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		// A malformed --server URL: no retry will fix it.
		return outcome{category: shared.CategoryNotFound, err: fmt.Errorf("sync: bad server URL %q: %w", c.ServerURL, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "usage-scraper")
	req.Header.Set(shared.HeaderAPIKey, c.APIKey)
	if idemKey != "" {
		req.Header.Set(shared.HeaderIdempotencyKey, idemKey)
	}
	if c.Verbose {
		log.Info("sync request", "attempt", n, "method", req.Method, "url", u, "idempotencyKey", idemKey,
			"headers", redact(req.Header), "bodyBytes", len(body), "body", clip(body))
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return outcome{category: shared.Classify(0, err), err: fmt.Errorf("sync: POST %s: %w", path, err)}
	}
	defer resp.Body.Close()
	o := outcome{status: resp.StatusCode, requestID: resp.Header.Get(shared.HeaderRequestID)}
	raw, rerr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if c.Verbose {
		log.Info("sync response", "attempt", n, "status", resp.StatusCode, "requestId", o.requestID,
			"headers", redact(resp.Header), "body", clip(raw))
	}
	return judge(o, path, u, resp, raw, rerr)
}

// redact copies headers without the key.
func redact(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		if strings.EqualFold(k, shared.HeaderAPIKey) || strings.EqualFold(k, "Authorization") || strings.EqualFold(k, "Cookie") || strings.EqualFold(k, "Set-Cookie") {
			out[k] = "[redacted]"
			continue
		}
		out[k] = strings.Join(v, ", ")
	}
	return out
}

func clip(b []byte) string {
	if len(b) > verboseBodyMax {
		return string(b[:verboseBodyMax]) + "…"
	}
	return string(b)
}

// ReportStatus posts the outcome of a scrape. It makes one attempt and one
// quick retry for transient failures: a lost status is replaced by the next
// scrape's, so it must never hold the scraper up.
func (c *Client) ReportStatus(ctx context.Context, st shared.ScraperStatus) error {
	log := c.logger().With("event", "scraper-status")
	body, err := json.Marshal(st)
	if err != nil {
		return &Error{Category: shared.CategoryValidation, Err: fmt.Errorf("encoding status: %w", err)}
	}
	_, last, err := c.do(ctx, log, retry.WithMaxRetries(statusRetries, retry.NewConstant(statusRetryDelay)),
		func(ctx context.Context, n int) outcome {
			return c.post(ctx, log, n, shared.PathScraperStatus, "", body)
		})
	if err != nil {
		return err
	}
	log.Debug("scraper status reported", "ok", st.OK, "category", st.Category, "requestId", last.requestID)
	return nil
}
