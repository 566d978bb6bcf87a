package browser

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/claude-usage/widget/scraper/parse"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
)

// usagePathRe matches the JSON the usage page loads.
var usagePathRe = regexp.MustCompile(`^/api/organizations/[^/]+/usage$`)

// capture collects the usage JSON the page loads.
type capture struct {
	mu         sync.Mutex
	pending    map[network.RequestID]int64 // request id → HTTP status
	finished   chan network.RequestID
	failed     []string
	retryAfter string // of the latest usage request answered 429
}

func (c *capture) listen(ev any) {
	switch ev := ev.(type) {
	case *network.EventResponseReceived:
		if ev.Response == nil || !isUsageURL(ev.Response.URL) {
			return
		}
		c.mu.Lock()
		c.pending[ev.RequestID] = ev.Response.Status
		if ev.Response.Status == 429 {
			c.retryAfter = headerValue(ev.Response.Headers, "Retry-After")
		}
		if ev.Response.Status >= 400 {
			// Chromium may never finish loading an error body the page
			// does not read, so the status alone ends the wait.
			c.failed = append(c.failed, fmt.Sprintf("HTTP %d", ev.Response.Status))
		}
		c.mu.Unlock()
	case *network.EventLoadingFinished:
		c.mu.Lock()
		_, ok := c.pending[ev.RequestID]
		c.mu.Unlock()
		if ok {
			select {
			case c.finished <- ev.RequestID:
			default: // a page that refetches endlessly must not block the reader
			}
		}
	case *network.EventLoadingFailed:
		c.mu.Lock()
		if _, ok := c.pending[ev.RequestID]; ok {
			c.failed = append(c.failed, ev.ErrorText)
		}
		c.mu.Unlock()
	}
}

func (c *capture) status(id network.RequestID) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending[id]
}

// headerValue finds a header case-insensitively: Chromium reports them
// as the server spelled them.
func headerValue(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			if s, ok := v.(string); ok {
				return s
			}
			return fmt.Sprint(v)
		}
	}
	return ""
}

func isUsageURL(raw string) bool {
	i := strings.Index(raw, "://")
	if i < 0 {
		return false
	}
	rest := raw[i+3:]
	j := strings.IndexByte(rest, '/')
	if j < 0 {
		return false
	}
	path := rest[j:]
	if k := strings.IndexAny(path, "?#"); k >= 0 {
		path = path[:k]
	}
	return usagePathRe.MatchString(path)
}

// readPageJS reads the tab into a parse.Page.
const readPageJS = `({url: location.href, title: document.title,
  text: document.body ? document.body.innerText : "",
  tz: Intl.DateTimeFormat().resolvedOptions().timeZone || "",
  cf: typeof window._cf_chl_opt !== "undefined" ||
      !!document.querySelector('#challenge-form, #challenge-stage, #challenge-running, #cf-challenge-running, .cf-browser-verification, script[src*="/cdn-cgi/challenge-platform/"]')})`

// Scrape loads the usage page and returns its snapshot. Partial snapshots
// are returned without error; every failure is a *scrapeerr.Error.
func (b *Browser) Scrape(ctx context.Context, usageURL string) (shared.Snapshot, error) {
	start := time.Now()
	snap, err := b.scrape(ctx, usageURL)
	attrs := []any{"url", usageURL, "durationMs", time.Since(start).Milliseconds()}
	if err != nil {
		b.log.Warn("scrape failed", append(attrs, "category", string(scrapeerr.ClassOf(err)), "error", err.Error())...)
		return snap, err
	}
	b.log.Info("scrape done", append(attrs, "capture", snap.Capture, "meters", len(snap.Meters), "partial", snap.Partial)...)
	return snap, nil
}

func (b *Browser) scrape(ctx context.Context, usageURL string) (shared.Snapshot, error) {
	b.scrapeMu.Lock()
	defer b.scrapeMu.Unlock()
	if err := ctx.Err(); err != nil {
		return shared.Snapshot{}, scrapeerr.New(scrapeerr.Unknown, err, "browser: scrape canceled")
	}
	tabCtx, err := b.tab(ctx)
	if err != nil {
		return shared.Snapshot{}, err
	}
	return b.scrapeIn(ctx, tabCtx, usageURL)
}

// scrapeIn loads the usage page in the tab of tabCtx and reads it. It
// touches no state of b but its options, so tabs of one browser can scrape
// side by side.
func (b *Browser) scrapeIn(ctx, tabCtx context.Context, usageURL string) (shared.Snapshot, error) {
	// Actions run on a child of the tab's context so that the caller's ctx
	// and the page timeout end this scrape and never the tab.
	runCtx, cancel := context.WithTimeout(tabCtx, b.opts.PageTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()

	c := &capture{pending: map[network.RequestID]int64{}, finished: make(chan network.RequestID, 16)}
	if err := chromedp.Listen(runCtx, c.listen); err != nil {
		return shared.Snapshot{}, b.classify(ctx, tabCtx, err, "listen to network events")
	}
	if err := chromedp.Do(runCtx, chromedp.Navigate(usageURL)); err != nil {
		return shared.Snapshot{}, b.classify(ctx, tabCtx, err, "load "+usageURL)
	}

	var (
		apiBody     []byte
		apiStatus   int64
		state       parse.Page
		deadline    = time.Now().Add(b.opts.MeterWait)
		metersSince time.Time
		tick        = time.NewTicker(100 * time.Millisecond)
	)
	defer tick.Stop()
	for {
		// Drain the finished usage requests; the last one is the freshest.
		for drained := false; !drained; {
			select {
			case id := <-c.finished:
				res, err := chromedp.Call(runCtx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: id})
				if err != nil {
					b.log.Warn("usage JSON body unavailable", "error", err.Error())
					continue
				}
				apiBody, apiStatus = res.Body, c.status(id)
			default:
				drained = true
			}
		}
		st, err := chromedp.Run(runCtx, chromedp.Evaluate[parse.Page](readPageJS))
		if err != nil {
			return shared.Snapshot{}, b.classify(ctx, tabCtx, err, "read the page")
		}
		state = st
		// A sign-in page stays one; a challenge often passes by itself
		// after a few seconds, so it gets until the deadline.
		if class := st.Class(); class == scrapeerr.NotLoggedIn {
			break
		}
		meters := strings.Contains(st.Text, "% used")
		if meters && metersSince.IsZero() {
			metersSince = time.Now()
		}
		// The page renders after its JSON arrives, so meters on the page
		// with the JSON captured (or failed) is the normal end. Meters
		// without any JSON for a second mean the page got its data another
		// way and the text is all there is.
		if meters && (apiBody != nil || c.hasFailed() || time.Since(metersSince) > time.Second) {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-tick.C:
		case <-runCtx.Done():
			return shared.Snapshot{}, b.classify(ctx, tabCtx, runCtx.Err(), "wait for the meters")
		}
	}
	c.mu.Lock()
	retryAfter := c.retryAfter
	c.mu.Unlock()
	return b.build(parse.Capture{Page: state, APIBody: apiBody, APIStatus: apiStatus, APIFailures: c.failures(), APIRetryAfter: retryAfter})
}

func (c *capture) hasFailed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.failed) > 0
}

func (c *capture) failures() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.failed)
}

// build turns what the tab showed into a snapshot and logs what parse
// noticed on the way.
func (b *Browser) build(c parse.Capture) (shared.Snapshot, error) {
	snap, notes, err := parse.Build(c, b.opts.Now(), b.opts.Location)
	for _, n := range notes {
		b.log.Log(context.Background(), n.Level, n.Msg, n.Key, n.Value)
	}
	return snap, err
}

// classify names an error from chromedp.
func (b *Browser) classify(ctx, tabCtx context.Context, err error, what string) error {
	var le *chromedp.LoadError
	switch {
	case ctx.Err() != nil:
		return scrapeerr.New(scrapeerr.Unknown, ctx.Err(), "browser: %s: canceled", what)
	case errors.As(err, &le):
		if strings.HasPrefix(le.ErrorText, "net::") {
			return scrapeerr.New(scrapeerr.Network, err, "browser: %s", what)
		}
		return scrapeerr.New(scrapeerr.Browser, err, "browser: %s", what)
	case tabCtx.Err() != nil, errors.Is(err, chromedp.ErrTargetDetached), errors.Is(err, chromedp.ErrChannelClosed):
		return scrapeerr.New(scrapeerr.Browser, err, "browser: %s: Chromium or its tab went away", what)
	case errors.Is(err, context.DeadlineExceeded):
		return scrapeerr.New(scrapeerr.Network, err, "browser: %s: no answer within %s", what, b.opts.PageTimeout)
	}
	return scrapeerr.New(scrapeerr.Browser, err, "browser: %s", what)
}

// Login opens the usage page in the browser's window and waits until it
// shows meters, i.e. until the user has signed in (and passed any browser
// check). ctx bounds the wait.
func (b *Browser) Login(ctx context.Context, usageURL string) error {
	b.scrapeMu.Lock()
	defer b.scrapeMu.Unlock()
	tabCtx, err := b.tab(ctx)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(tabCtx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	if err := chromedp.Do(runCtx, chromedp.Navigate(usageURL)); err != nil {
		return b.classify(ctx, tabCtx, err, "load "+usageURL)
	}
	b.log.Info("waiting for sign-in in the browser window", "url", usageURL)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last := scrapeerr.NotLoggedIn
	for {
		st, err := chromedp.Run(runCtx, chromedp.Evaluate[parse.Page](readPageJS))
		if err == nil {
			class := st.Class()
			if class == "" && strings.Contains(st.Text, "% used") {
				b.log.Info("signed in", "url", st.URL)
				return nil
			}
			if class != "" {
				last = class
			}
		} else if tabCtx.Err() != nil {
			return b.classify(ctx, tabCtx, err, "wait for sign-in")
		}
		// Errors while the user clicks through pages (navigation in
		// progress) are expected; the loop simply looks again.
		select {
		case <-tick.C:
		case <-runCtx.Done():
			if ctx.Err() != nil {
				return scrapeerr.New(last, ctx.Err(), "browser: not signed in before the wait ended")
			}
			return scrapeerr.New(scrapeerr.Browser, runCtx.Err(), "browser: the window went away before sign-in")
		}
	}
}
