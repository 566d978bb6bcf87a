// Package runner is the scraper's scheduler: every interval it scrapes the
// usage page, puts the snapshot in the outbox, drains the outbox oldest
// first and reports the scrape's outcome to the server. Scraping goes on
// whatever the sync does; repeated scrape failures back off and trip a
// breaker so that a signed-out scraper does not hammer claude.ai.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sethvargo/go-retry"

	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

// Scraper reads the usage page once. The browser implements it; errors
// are *scrapeerr.Error.
type Scraper interface {
	Scrape(ctx context.Context, url string) (shared.Snapshot, error)
}

// Noter is a Scraper that has something to add to the status of its last
// successful scrape (the source chain: that it fell back).
type Noter interface {
	Note() string
}

// Defaults.
const (
	DefaultInterval         = 5 * time.Minute
	DefaultJitter           = 0.1
	DefaultScrapeTimeout    = 2 * time.Minute
	DefaultMaxSkip          = 12
	DefaultBreakerThreshold = 3
	// DefaultBreakerCooldown is longer than the widget's 60 s: a login
	// problem needs a human, and claude.ai should not see a retry storm.
	DefaultBreakerCooldown = 30 * time.Minute
	maxStatusMessage       = 500
)

// Config configures a Runner. Scraper, Outbox and Client are required;
// zero values of the rest take the defaults.
type Config struct {
	Scraper  Scraper
	Outbox   *outbox.Outbox
	Client   *upload.Client
	UsageURL string
	Account  string // written into every snapshot (shared.DefaultAccount)

	Interval time.Duration // between cycle starts (DefaultInterval)
	Jitter   float64       // ± fraction of Interval (DefaultJitter); negative disables
	Rand     func() float64
	Logger   *slog.Logger

	ScrapeTimeout time.Duration // bounds one scrape (DefaultScrapeTimeout)
	// DrainBudget bounds how long one cycle spends draining a backlog
	// (Interval/2); the rest waits for the next cycle.
	DrainBudget      time.Duration
	MaxSkip          int // most cycles skipped after repeated scrape failures (DefaultMaxSkip)
	BreakerThreshold int
	BreakerCooldown  time.Duration
}

// Runner runs cycles. Cycle and Run must not be called concurrently.
type Runner struct {
	cfg     Config
	log     *slog.Logger
	breaker *shared.Breaker

	failures int           // consecutive failed scrapes
	skip     retry.Backoff // cycles to skip after each failure; nil after a success
	skipLeft int           // cycles still to skip

	deferred map[string]*deferral // outbox id → its own backoff, after its retries
	dropSeen int                  // outbox drops already noted
	dropNote string               // drops not yet reported to the server
	dropN    int                  // how many those are
	note     string               // added to the status of the last scrape
}

// New checks cfg and returns a Runner.
func New(cfg Config) (*Runner, error) {
	switch {
	case cfg.Scraper == nil:
		return nil, errors.New("runner: a scraper is required")
	case cfg.Outbox == nil:
		return nil, errors.New("runner: an outbox is required")
	case cfg.Client == nil:
		return nil, errors.New("runner: a sync client is required")
	case cfg.UsageURL == "":
		return nil, errors.New("runner: the usage page URL is required")
	}
	if cfg.Account == "" {
		cfg.Account = shared.DefaultAccount
	}
	if !shared.AccountPattern.MatchString(cfg.Account) {
		return nil, fmt.Errorf("runner: account %q must match %s", cfg.Account, shared.AccountPattern)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = DefaultJitter
	}
	cfg.Jitter = min(max(cfg.Jitter, 0), 0.5)
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ScrapeTimeout <= 0 {
		cfg.ScrapeTimeout = DefaultScrapeTimeout
	}
	if cfg.DrainBudget <= 0 {
		cfg.DrainBudget = cfg.Interval / 2
	}
	if cfg.MaxSkip <= 0 {
		cfg.MaxSkip = DefaultMaxSkip
	}
	if cfg.BreakerThreshold <= 0 {
		cfg.BreakerThreshold = DefaultBreakerThreshold
	}
	if cfg.BreakerCooldown <= 0 {
		cfg.BreakerCooldown = DefaultBreakerCooldown
	}
	r := &Runner{cfg: cfg, log: cfg.Logger.With("component", "runner"), deferred: map[string]*deferral{}}
	r.breaker = shared.NewBreaker(shared.BreakerConfig{
		Name: "scrape", Threshold: cfg.BreakerThreshold, Cooldown: cfg.BreakerCooldown,
		OnTransition: func(t shared.Transition) {
			r.log.Warn("scrape breaker transition", "breaker", t.Name, "from", t.From.String(), "to", t.To.String(),
				"failures", t.Failures, "at", t.At)
		},
	})
	return r, nil
}

// Breaker is the scrape breaker, for status and tests.
func (r *Runner) Breaker() *shared.Breaker { return r.breaker }

// CycleResult is what one cycle did.
type CycleResult struct {
	Scraped   bool   // a scrape was attempted
	Skipped   string // why the scrape was skipped, if it was
	Snapshot  shared.Snapshot
	ID        string // outbox id of the new snapshot
	ScrapeErr error
	Drain     DrainResult
	Reported  bool // the scrape's outcome reached the server
}

// DrainResult is what one drain did.
type DrainResult struct {
	Sent, Rejected, Corrupt, Remaining int
	// Deferred counts the snapshots waiting behind the others on their own
	// backoff after their retries were spent (tried this drain or not).
	Deferred int
	// Err is the failure that stopped the drain: the server unreachable,
	// rate limiting, an answer not from a usage-server, two snapshots in a
	// row failing, or AUTH/NOT_FOUND, which need the user. Everything not
	// sent stays in the outbox.
	Err error
	// Failed is the last failed send of the drain, Err or a deferral.
	Failed error
}

// Run loops until ctx ends: a cycle at once, then one every Interval
// (± jitter) measured from cycle start, so a slow sync does not shift the
// scrape schedule. It returns nil when ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	r.log.Info("scraper started", "interval", r.cfg.Interval.String(), "account", r.cfg.Account, "usageUrl", r.cfg.UsageURL)
	for {
		start := time.Now()
		r.Cycle(ctx)
		if ctx.Err() != nil {
			break
		}
		wait := max(r.nextInterval()-time.Since(start), 0)
		r.log.Debug("next cycle", "inMs", wait.Milliseconds())
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
		timer.Stop()
		if ctx.Err() != nil {
			break
		}
	}
	r.log.Info("scraper stopped", "reason", context.Cause(ctx).Error())
	return nil
}

func (r *Runner) nextInterval() time.Duration {
	f := 1 + r.cfg.Jitter*(2*r.cfg.Rand()-1)
	return time.Duration(float64(r.cfg.Interval) * f)
}

// Cycle scrapes (unless backing off), stores, drains and reports.
func (r *Runner) Cycle(ctx context.Context) CycleResult {
	var res CycleResult
	if done, skip := r.admit(); skip != "" {
		res.Skipped = skip
		r.log.Info("scrape skipped", "reason", skip, "failures", r.failures)
	} else {
		res.Scraped = true
		r.scrapeAndStore(ctx, done, &res)
	}
	if ctx.Err() != nil {
		return res
	}
	res.Drain = r.Drain(ctx)
	r.noteDrops()
	if (res.Scraped || r.dropNote != "") && ctx.Err() == nil {
		if failed := res.Drain.Err; failed != nil || (res.Drain.Failed != nil && res.Drain.Sent == 0) {
			// The server just failed us; another request now would only
			// wait again. The next cycle reports its own outcome.
			if failed == nil {
				failed = res.Drain.Failed
			}
			r.log.Info("scrape status not reported: server unavailable", "category", string(upload.CategoryOf(failed)))
		} else {
			res.Reported = r.report(ctx, res.ScrapeErr)
		}
	}
	return res
}

// admit decides whether this cycle scrapes. done records the outcome in
// the breaker.
func (r *Runner) admit() (done func(bool), skip string) {
	if r.skipLeft > 0 {
		r.skipLeft--
		return nil, fmt.Sprintf("backing off after %d failed scrapes, %d more cycle(s) to skip", r.failures, r.skipLeft)
	}
	done, err := r.breaker.Allow()
	if err != nil {
		return nil, fmt.Sprintf("scrape breaker open after %d failed scrapes, next try in %s",
			r.failures, r.breaker.RetryIn().Round(time.Second))
	}
	return done, ""
}

func (r *Runner) scrapeAndStore(ctx context.Context, done func(bool), res *CycleResult) {
	sctx, cancel := context.WithTimeout(ctx, r.cfg.ScrapeTimeout)
	snap, err := r.cfg.Scraper.Scrape(sctx, r.cfg.UsageURL)
	if err != nil && ctx.Err() == nil && errors.Is(sctx.Err(), context.DeadlineExceeded) && scrapeerr.ClassOf(err) == scrapeerr.Unknown {
		err = scrapeerr.New(scrapeerr.Network, err, "the usage page did not load within %s", r.cfg.ScrapeTimeout)
	}
	cancel()
	at := time.Now()
	if err != nil {
		if ctx.Err() != nil {
			// Shutdown is not the page's fault: the breaker does not count
			// it, and the runner is not used again.
			res.ScrapeErr = err
			return
		}
		done(false)
		r.failures++
		if r.skip == nil {
			// 1, 2, 4, 8, … cycles, at most MaxSkip: go-retry's exponential
			// backoff counted in intervals.
			r.skip = retry.WithCappedDuration(time.Duration(r.cfg.MaxSkip)*r.cfg.Interval, retry.NewExponential(r.cfg.Interval))
		}
		d, _ := r.skip.Next()
		r.skipLeft = int(d / r.cfg.Interval)
		if wait := scrapeerr.WaitOf(err); wait > 0 {
			// The source named its wait (429 Retry-After): no scrape
			// before it has passed, whatever the backoff says.
			r.skipLeft = max(r.skipLeft, int((wait+r.cfg.Interval-1)/r.cfg.Interval)-1)
		}
		class := scrapeerr.ClassOf(err)
		res.ScrapeErr = err
		r.log.Error("scrape failed", "category", string(class), "nextStep", scrapeerr.NextStep(err), "failures", r.failures,
			"skipCycles", r.skipLeft, "error", err.Error())
		r.track(upload.ScrapeRecord{At: at, OK: false, Category: string(class), Message: statusMessage(err)})
		return
	}
	done(true)
	if r.failures > 0 {
		r.log.Info("scraping recovered", "failures", r.failures)
	}
	r.failures, r.skip, r.skipLeft = 0, nil, 0
	snap.Account = r.cfg.Account
	res.Snapshot = snap
	r.log.Info("scraped", "meters", len(snap.Meters), "partial", snap.Partial, "capture", snap.Capture, "scrapedAt", snap.ScrapedAt)
	r.note = r.successNote(snap, at)
	if verr := snap.Validate(at); verr != nil {
		// Still queued: the server decides, and a rejected snapshot is kept
		// in rejected/ for a human to look at.
		r.log.Warn("snapshot fails local validation", "error", verr.Error())
	}
	r.track(upload.ScrapeRecord{At: at, OK: true, Category: string(shared.ScrapeOK), Message: r.note})
	id, err := r.cfg.Outbox.Put(snap)
	var nd *outbox.NotDurableError
	if err != nil && !errors.As(err, &nd) {
		r.log.Error("snapshot not queued", "scrapedAt", snap.ScrapedAt, "error", err.Error())
		return
	}
	// Held in memory (the outbox logged why) or on disk: either way the
	// drain sends it under this id.
	res.ID = id
	r.noteDrops()
}

func (r *Runner) track(rec upload.ScrapeRecord) {
	if r.cfg.Client.Tracker != nil {
		r.cfg.Client.Tracker.RecordScrape(rec)
	}
}

// successNote is the status message of a successful scrape: partial
// meters, drift between its two readings (also logged and counted), and
// a fallback the source chain made.
func (r *Runner) successNote(snap shared.Snapshot, at time.Time) string {
	var parts []string
	if m := partialMessage(snap); m != "" {
		parts = append(parts, m)
	}
	if len(snap.Drift) > 0 {
		var ds []string
		for _, id := range slices.Sorted(maps.Keys(snap.Drift)) {
			d := snap.Drift[id]
			ds = append(ds, fmt.Sprintf("%s %g%% vs %g%%", id, d.API, d.DOM))
		}
		r.log.Warn("readings drift", "meters", strings.Join(ds, ", "), "capture", snap.Capture)
		if r.cfg.Client.Tracker != nil {
			r.cfg.Client.Tracker.RecordDrift(at, snap.Drift)
		}
		parts = append(parts, "drift: "+strings.Join(ds, ", ")+" — "+shared.DriftText)
	}
	if n, ok := r.cfg.Scraper.(Noter); ok {
		if m := n.Note(); m != "" {
			parts = append(parts, m)
		}
	}
	return clipMessage(strings.Join(parts, "; "))
}

func partialMessage(s shared.Snapshot) string {
	if !s.Partial {
		return ""
	}
	return fmt.Sprintf("partial: %d meter(s) could not be read", len(s.ExtractionErrors))
}

func statusMessage(err error) string {
	return clipMessage(scrapeerr.NextStep(err) + " (" + err.Error() + ")")
}

// clipMessage bounds a status message to what the server accepts.
func clipMessage(msg string) string {
	if utf8.RuneCountInString(msg) > maxStatusMessage {
		msg = string([]rune(msg)[:maxStatusMessage-1]) + "…"
	}
	return msg
}

// report sends the scrape's outcome; a failure is logged, never fatal.
//
// A loss of snapshots not reported yet goes first and alone: the server
// keeps the latest status, so the widget shows the loss until the next
// cycle reports the scrape again.
func (r *Runner) report(ctx context.Context, scrapeErr error) bool {
	st := shared.ScraperStatus{Account: r.cfg.Account, At: time.Now().UTC(), OK: scrapeErr == nil, Category: shared.ScrapeOK}
	switch {
	case r.dropNote != "":
		st.OK, st.Category, st.Message = false, upload.CategoryDropped, clipMessage(r.dropNote)
	case scrapeErr != nil:
		st.Category, st.Message = scrapeerr.ClassOf(scrapeErr), statusMessage(scrapeErr)
	default:
		st.Message = r.note
	}
	if err := r.cfg.Client.ReportStatus(ctx, st); err != nil {
		r.log.Warn("scrape status not reported", "category", string(upload.CategoryOf(err)), "error", err.Error())
		return false
	}
	if st.Category == upload.CategoryDropped {
		r.dropNote, r.dropN = "", 0
	}
	return true
}

// noteDrops turns the outbox's new drops into a pending status report and
// a record for `usage-scraper status`; the outbox has logged them.
func (r *Runner) noteDrops() {
	d := r.cfg.Outbox.Dropped()
	if d.Count <= r.dropSeen {
		return
	}
	r.dropN += d.Count - r.dropSeen
	r.dropSeen = d.Count
	r.dropNote = fmt.Sprintf("%d snapshot(s) dropped, neither stored nor sent: %s", r.dropN, d.Reason)
	if r.cfg.Client.Tracker != nil {
		r.cfg.Client.Tracker.RecordDropped(d.At, r.dropNote)
	}
}
