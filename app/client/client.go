// Package client fetches the latest usage from the server for the widget:
// one attempt plus a bounded number of retries for transient failures
// (go-retry), and the shared circuit breaker across fetch cycles. It builds
// for js/wasm (net/http rides on the browser's fetch) and for the host, so
// the same code is tested against httptest.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/claude-usage/widget/shared"
)

// Defaults of the widget fetch: one attempt and two retries, 2 s apart.
const (
	DefaultRetries    = 2
	DefaultRetryDelay = 2 * time.Second
	// DefaultAttemptTimeout bounds one request so that a hanging server
	// counts as a NETWORK failure instead of freezing the widget.
	DefaultAttemptTimeout = 10 * time.Second
	// DefaultMaxRetryAfter is the longest Retry-After a cycle waits for
	// before it gives up until the next refresh.
	DefaultMaxRetryAfter = time.Minute
	maxBodyBytes         = 1 << 20
)

// Kind is the outcome of one fetch cycle, as the widget shows it.
type Kind int

const (
	KindOK           Kind = iota // Data holds the response
	KindNoData                   // 404 NO_DATA: the empty state
	KindUnauthorized             // 401/403: ask for the token
	KindUnavailable              // retries exhausted or not retryable
	KindBreakerOpen              // the breaker blocked the call; nothing was sent
)

func (k Kind) String() string {
	switch k {
	case KindOK:
		return "OK"
	case KindNoData:
		return "NO_DATA"
	case KindUnauthorized:
		return "UNAUTHORIZED"
	case KindUnavailable:
		return "UNAVAILABLE"
	case KindBreakerOpen:
		return "BREAKER_OPEN"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Result is what one fetch cycle produced.
type Result struct {
	Kind     Kind
	Data     *shared.UsageResponse // only with KindOK
	Err      error                 // the last error, nil with KindOK
	Category shared.Category       // of the last error
	Attempts int                   // requests sent
	RetryIn  time.Duration         // with KindBreakerOpen: until the probe
}

// RetryEvent tells the caller that a retry is pending, so the widget can
// show "Connection error - retrying" while it waits.
type RetryEvent struct {
	Attempt  int // the attempt that failed, 1-based
	Delay    time.Duration
	Category shared.Category
	Err      error
}

// Request is one fetch cycle.
type Request struct {
	Account string
	// Token, when set, is sent instead of Config.Token's.
	Token string
	// Manual is the refresh button: it bypasses an open breaker.
	Manual  bool
	OnRetry func(RetryEvent)
}

// Config configures a Client. Zero values take the defaults.
type Config struct {
	BaseURL string        // scheme://host of the server; required
	Token   func() string // read token; "" sends no Authorization
	// HTTP sends the requests: an *http.Client on the host, the
	// browser's fetch in WASM (see defaultDoer).
	HTTP       Doer
	Retries    int           // retries after the first attempt (2); -1 for none
	RetryDelay time.Duration // constant wait between attempts (2 s)
	Timeout    time.Duration // per attempt (10 s)
	// MaxRetryAfter bounds how long a cycle waits for a 429's
	// Retry-After (1 min); a longer one ends the cycle and the next
	// refresh tries again.
	MaxRetryAfter time.Duration
	Breaker       *shared.Breaker
	Logger        Logger
}

// ErrFetchFailed marks fetch's TypeError: the browser reports every
// transport failure (refused, reset, DNS, offline) this way, so the client
// counts it as a NETWORK failure.
var ErrFetchFailed = errors.New("fetch failed")

// Doer sends one request; *http.Client is one.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Logger takes slog-style key-value pairs; *slog.Logger is one. The WASM
// build uses a small JSON console logger instead, because linking log/slog
// costs about 50 KB of the 1.6 MB brotli budget.
type Logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
	Error(msg string, args ...any)
}

type nopLogger struct{}

func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

// Client fetches usage. It is safe for concurrent use, but the widget runs
// one cycle at a time.
type Client struct {
	cfg Config
}

// New returns a client; the breaker is created from defaults when nil.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("client: base URL is required")
	}
	if _, err := url.Parse(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("client: base URL %q: %w", cfg.BaseURL, err)
	}
	if cfg.HTTP == nil {
		cfg.HTTP = defaultDoer()
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	} else if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = DefaultRetryDelay
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultAttemptTimeout
	}
	if cfg.Token == nil {
		cfg.Token = func() string { return "" }
	}
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = nopLogger{}
	}
	if cfg.Breaker == nil {
		cfg.Breaker = shared.NewBreaker(shared.BreakerConfig{Name: "widget"})
	}
	return &Client{cfg: cfg}, nil
}

// Breaker is the client's breaker, for the widget's countdown.
func (c *Client) Breaker() *shared.Breaker { return c.cfg.Breaker }

// attemptError is one failed attempt with what decides its retry.
type attemptError struct {
	status     int
	cat        shared.Category
	retryAfter time.Duration // a 429's Retry-After
	err        error
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

// Fetch runs one cycle: the breaker decides whether to call at all (a manual
// refresh always calls), then up to 1+Retries attempts. The breaker counts
// one failure per cycle whose retries are exhausted; NO_DATA and 401 are
// answers from a healthy server and count as successes.
func (c *Client) Fetch(ctx context.Context, req Request) Result {
	log := c.cfg.Logger
	var (
		done  func(bool)
		probe bool // this cycle is the half-open probe
	)
	if req.Manual {
		done = c.cfg.Breaker.Bypass()
	} else {
		probe = c.cfg.Breaker.State() == shared.StateHalfOpen
		d, err := c.cfg.Breaker.Allow()
		if err != nil {
			retryIn := c.cfg.Breaker.RetryIn()
			log.Info("fetch skipped: breaker open", "retryInMs", retryIn.Milliseconds())
			return Result{Kind: KindBreakerOpen, Err: err, RetryIn: retryIn}
		}
		done = d
	}

	var (
		res     Result
		last    *attemptError
		attempt int
	)
	// go-retry keeps the schedule and does the waiting; the wrapper only
	// stretches the wait to a 429's Retry-After and tells the widget a
	// retry is pending.
	inner := retry.WithMaxRetries(uint64(c.cfg.Retries), retry.NewConstant(c.cfg.RetryDelay))
	backoff := retry.BackoffFunc(func() (time.Duration, bool) {
		d, stop := inner.Next()
		if stop {
			return 0, true
		}
		if last.retryAfter > d {
			if last.retryAfter > c.cfg.MaxRetryAfter {
				log.Warn("fetch not retried: Retry-After is beyond this cycle", "attempt", attempt,
					"retryAfterMs", last.retryAfter.Milliseconds())
				return 0, true
			}
			d = last.retryAfter
		}
		log.Warn("fetch retry", "attempt", attempt, "delayMs", d.Milliseconds(),
			"category", string(last.cat), "error", last.Error())
		if req.OnRetry != nil {
			req.OnRetry(RetryEvent{Attempt: attempt, Delay: d, Category: last.cat, Err: last.err})
		}
		return d, false
	})
	err := retry.Do(ctx, backoff, func(ctx context.Context) error {
		attempt++
		start := time.Now()
		data, aerr := c.attempt(ctx, req)
		ms := time.Since(start).Milliseconds()
		if aerr == nil {
			log.Info("fetch ok", "attempt", attempt, "durationMs", ms, "account", data.Account,
				"ageSeconds", data.AgeSeconds)
			res.Data = data
			return nil
		}
		last = aerr
		log.Warn("fetch failed", "attempt", attempt, "durationMs", ms, "status", aerr.status,
			"category", string(aerr.cat), "error", aerr.Error())
		if !aerr.cat.Retryable() || ctx.Err() != nil {
			// Not retryable, or the widget is going away: do not wait.
			return aerr
		}
		return retry.RetryableError(aerr)
	})
	res.Attempts = attempt
	if err == nil {
		done(true)
		res.Kind = KindOK
		return res
	}
	if ctx.Err() != nil {
		// The caller gave up (dismount, or a manual refresh replaced this
		// cycle): that says nothing about the server, so it is no
		// failure. Only a probe must report, or the breaker would wait
		// for it forever.
		if probe {
			done(false)
		}
		log.Info("fetch cancelled", "attempt", attempt)
		return Result{Kind: KindUnavailable, Err: ctx.Err(), Category: shared.CategoryUnknown, Attempts: attempt}
	}
	if last == nil {
		done(false)
		return Result{Kind: KindUnavailable, Err: err, Category: shared.Classify(0, err), Attempts: attempt}
	}
	res.Err = last
	res.Category = last.cat
	switch {
	case last.status == http.StatusNotFound && last.cat == shared.CategoryNotFound:
		done(true)
		res.Kind = KindNoData
	case last.cat == shared.CategoryAuth:
		done(true)
		res.Kind = KindUnauthorized
	default:
		done(false)
		res.Kind = KindUnavailable
	}
	return res
}

func (c *Client) attempt(ctx context.Context, req Request) (*shared.UsageResponse, *attemptError) {
	account := req.Account
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	u := strings.TrimRight(c.cfg.BaseURL, "/") + shared.PathUsage
	if account != "" {
		u += "?account=" + url.QueryEscape(account)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, &attemptError{cat: shared.CategoryValidation, err: fmt.Errorf("client: building request: %w", err)}
	}
	hreq.Header.Set("Accept", "application/json")
	c.authorize(hreq, req.Token)
	resp, err := c.cfg.HTTP.Do(hreq)
	if err != nil {
		cat := shared.Classify(0, err)
		if errors.Is(err, ErrFetchFailed) {
			cat = shared.CategoryNetwork
		}
		return nil, &attemptError{cat: cat, err: fmt.Errorf("client: GET %s: %w", shared.PathUsage, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		ae := shared.ParseErrorResponse(resp)
		return nil, &attemptError{status: resp.StatusCode, cat: ae.Category(), retryAfter: ae.RetryAfter, err: fmt.Errorf("client: %w", ae)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return nil, &attemptError{status: resp.StatusCode, cat: shared.Classify(0, err), err: fmt.Errorf("client: reading the response: %w", err)}
	}
	var data shared.UsageResponse
	if err := json.Unmarshal(body, &data); err != nil {
		// A proxy's HTML page or a truncated body: the server side is
		// misbehaving, which a retry may fix.
		return nil, &attemptError{status: resp.StatusCode, cat: shared.CategoryServer, err: fmt.Errorf("client: decoding the response: %w", err)}
	}
	if len(data.Meters) == 0 {
		return nil, &attemptError{status: resp.StatusCode, cat: shared.CategoryServer, err: errors.New("client: the response has no meters")}
	}
	return &data, nil
}
