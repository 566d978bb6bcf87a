//go:build !(js && wasm)

package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/claude-usage/widget/app/client"
	"github.com/claude-usage/widget/shared"
)

// The component tests run the widget in go-app's test engine with the real
// client (retry and breaker) over a scripted transport and a fake page,
// inside a testing/synctest bubble: the widget's own tickers, the retry
// waits and the breaker's cooldown all run on the bubble's fake clock, so
// time never passes for real. The bubble's clock starts at t0.

var t0 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// retryDelay is off the whole seconds on purpose: a retry and the widget's
// one-second tick never fall on the same instant, so the order of their
// dispatches is fixed.
const retryDelay = 2500 * time.Millisecond

// step is one scripted answer: an HTTP status with a body, or a transport
// error.
type step struct {
	status int
	body   any
	err    error
}

var refused = step{err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}

func ok(r shared.UsageResponse) step { return step{status: 200, body: r} }

func apiErr(status int, code shared.Code) step {
	return step{status: status, body: shared.ErrorBody{ErrorCode: code, Message: "scripted", Category: code.Info().Category}}
}

type fakeDoer struct {
	mu    sync.Mutex
	steps []step
	reqs  []*http.Request
	at    []time.Time
	// other answers the stream, history and windows requests (default: a
	// server without them, 404 NOT_FOUND); they are not in reqs.
	other func(r *http.Request) (*http.Response, error)
	extra []*http.Request
}

func (d *fakeDoer) script(s ...step) {
	d.mu.Lock()
	d.steps = append(d.steps[:0], s...)
	d.mu.Unlock()
}

func jsonResponse(status int, body any) *http.Response {
	b, _ := json.Marshal(body)
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(b))}
}

// Do answers with the next step (the last repeats). A usage body's age is
// computed as the server would, from its scrapedAt and the clock.
func (d *fakeDoer) Do(r *http.Request) (*http.Response, error) {
	d.mu.Lock()
	if r.URL.Path != shared.PathUsage {
		d.extra = append(d.extra, r)
		other := d.other
		d.mu.Unlock()
		if other == nil {
			return jsonResponse(404, shared.ErrorBody{ErrorCode: shared.CodeNotFound, Message: "no route", Category: shared.CategoryNotFound}), nil
		}
		return other(r)
	}
	defer d.mu.Unlock()
	d.reqs = append(d.reqs, r)
	d.at = append(d.at, time.Now())
	if len(d.steps) == 0 {
		return nil, refused.err
	}
	s := d.steps[0]
	if len(d.steps) > 1 {
		d.steps = d.steps[1:]
	}
	if s.err != nil {
		return nil, s.err
	}
	body := s.body
	if u, ok := body.(shared.UsageResponse); ok {
		u.AgeSeconds = int64(time.Since(u.ScrapedAt) / time.Second)
		body = u
	}
	b, _ := json.Marshal(body)
	return &http.Response{StatusCode: s.status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(b))}, nil
}

func (d *fakeDoer) hits() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.reqs)
}

func (d *fakeDoer) last() *http.Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.reqs[len(d.reqs)-1]
}

// times are the requests' times since t0.
func (d *fakeDoer) times() []time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]time.Duration, len(d.at))
	for i, at := range d.at {
		out[i] = at.Sub(t0)
	}
	return out
}

type fakePage struct {
	mu       sync.Mutex
	fragment string
	replaced []string
	visible  bool
	onChange func(bool)
	stopped  int
}

func (p *fakePage) Fragment() string { return p.fragment }
func (p *fakePage) ReplaceFragment(rest string) {
	p.mu.Lock()
	p.replaced = append(p.replaced, rest)
	p.mu.Unlock()
}
func (p *fakePage) Visible() bool { return p.visible }
func (p *fakePage) OnVisibilityChange(f func(bool)) func() {
	p.onChange = f
	return func() { p.stopped++ }
}

type harness struct {
	t     *testing.T
	eng   app.TestEngine
	w     *Widget
	doer  *fakeDoer
	page  *fakePage
	store *MemoryStorage
	br    *shared.Breaker
}

const refresh = 60 * time.Second

// inBubble runs a widget test in its own synctest bubble.
func inBubble(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	t.Parallel()
	synctest.Test(t, f)
}

// newHarness builds a widget inside the current bubble. The cleanup
// dismounts it, so its tickers end before the bubble does (synctest fails
// the test on any goroutine left behind).
func newHarness(t *testing.T, steps ...step) *harness {
	t.Helper()
	if !time.Now().Equal(t0) {
		t.Fatalf("the bubble's clock starts at %v, want t0 %v", time.Now(), t0)
	}
	h := &harness{
		t:     t,
		eng:   app.NewTestEngine(),
		doer:  &fakeDoer{},
		page:  &fakePage{visible: true},
		store: NewMemoryStorage(),
	}
	h.doer.script(steps...)
	h.br = shared.NewBreaker(shared.BreakerConfig{Name: "widget"})
	c, err := client.New(client.Config{BaseURL: "http://127.0.0.1:1", HTTP: h.doer, RetryDelay: retryDelay, Breaker: h.br})
	if err != nil {
		t.Fatal(err)
	}
	h.w = NewWidget(&Deps{
		Fetcher:          c,
		Cache:            NewCache(h.store),
		Settings:         Settings{Refresh: refresh, RetryDelay: retryDelay, BreakerThreshold: 3, BreakerCooldown: time.Minute},
		Location:         time.UTC,
		Page:             h.page,
		startOnPreRender: true,
	})
	t.Cleanup(h.dismount)
	return h
}

// load mounts the widget; OnPreRender starts it. It runs go-app's own
// first dispatch (the frame that shows the started state) and leaves the
// first fetch's dispatches pending.
func (h *harness) load() {
	h.t.Helper()
	if err := h.eng.Load(h.w); err != nil {
		h.t.Fatal(err)
	}
	h.eng.ConsumeNext()
}

// dismount replaces the widget by another component, as leaving the page
// does.
func (h *harness) dismount() {
	if err := h.eng.Load(&other{}); err != nil {
		h.t.Error(err)
	}
	h.settle()
}

// settle waits for every fetch in flight (its retry waits pass on the fake
// clock) and runs every pending dispatch.
func (h *harness) settle() {
	// Twice: a dispatch may start a goroutine (the stream) that dispatches
	// in turn, after ConsumeAll found the queue empty.
	for range 2 {
		synctest.Wait()
		h.eng.ConsumeAll()
	}
}

// advance lets d pass one second at a time, running what the widget's
// tickers dispatched after each, as the browser would. A fetch started on
// the way finishes (with its waits) before the next second.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		time.Sleep(min(time.Second, time.Until(end)))
		h.settle()
	}
}

// until advances to t0+at.
func (h *harness) until(at time.Duration) {
	h.t.Helper()
	if d := t0.Add(at).Sub(time.Now()); d > 0 {
		h.advance(d)
	}
}

// on runs f on the UI goroutine with the widget's context, as a click
// handler would, and settles.
func (h *harness) on(f func(ctx app.Context)) {
	h.t.Helper()
	if !h.w.started {
		h.t.Fatal("widget not started")
	}
	ran := false
	h.w.ctx.Dispatch(func(ctx app.Context) { f(ctx); ran = true })
	h.settle()
	if !ran {
		h.t.Fatal("dispatch did not run")
	}
}

func (h *harness) status() string {
	h.t.Helper()
	// main > #status > #status-text > text
	for _, want := range []string{TextLoading, TextNoData, TextRetrying, TextUnavailable, TextUnauthorized, ""} {
		if app.Match(app.Text(want), h.w, 0, 1, 0, 0) == nil {
			return want
		}
	}
	s := h.html()
	if m := regexp.MustCompile(`id="status-text"[^>]*>([^<]*)<`).FindStringSubmatch(s); m != nil {
		return strings.TrimSpace(html.UnescapeString(m[1]))
	}
	return ""
}

func (h *harness) html() string { return app.HTMLString(h.w) }

func (h *harness) has(text string) bool {
	return strings.Contains(html.UnescapeString(h.html()), text)
}

func (h *harness) wantStatus(want string) {
	h.t.Helper()
	if got := h.status(); got != want {
		h.t.Fatalf("at t0+%v: status = %q, want %q\n%s", time.Since(t0), got, want, h.html())
	}
}

func (h *harness) wantText(texts ...string) {
	h.t.Helper()
	for _, s := range texts {
		if !h.has(s) {
			h.t.Errorf("at t0+%v: page lacks %q\n%s", time.Since(t0), s, h.html())
		}
	}
}

func (h *harness) wantNoText(texts ...string) {
	h.t.Helper()
	for _, s := range texts {
		if h.has(s) {
			h.t.Errorf("at t0+%v: page shows %q\n%s", time.Since(t0), s, h.html())
		}
	}
}

func resetAt(d time.Duration) *time.Time {
	t := t0.Add(d)
	return &t
}

// usage is a response for data scraped ageSeconds before t0; the fake
// server computes its age when it answers.
func usage(ageSeconds int64, meters ...shared.Meter) shared.UsageResponse {
	if len(meters) == 0 {
		meters = []shared.Meter{
			{ID: "session", Label: "Current session", PercentUsed: 42, ResetsAt: resetAt(2*time.Hour + 10*time.Minute)},
			{ID: "weekly_all", Label: "All models", PercentUsed: 18, ResetsAt: resetAt(3*24*time.Hour + 19*time.Hour)},
		}
	}
	return shared.UsageResponse{
		Snapshot: shared.Snapshot{
			Account: "default", ScrapedAt: t0.Add(-time.Duration(ageSeconds) * time.Second),
			Capture: shared.CaptureAPI, Meters: meters,
		},
		AgeSeconds: ageSeconds,
	}
}

func TestLoadingThenData(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, ok(usage(60)))
		h.load()
		h.wantStatus(TextLoading)
		h.settle()
		h.wantStatus("")
		h.wantText("Current session", "42% used", "Resets in 2 h 10 min", "All models", "18% used", "Resets Tue 19:00")
		h.wantNoText(TextLoading, "Cached", "min old")
		if got, want := h.doer.hits(), 1; got != want {
			t.Errorf("requests = %d, want %d", got, want)
		}
		if _, ok := NewCache(h.store).LoadLast(""); !ok {
			t.Error("the good response was not cached")
		}
		// The countdown is live: a minute later it says so.
		h.advance(time.Minute)
		h.wantText("Resets in 2 h 9 min")
	})
}

func TestRetryingThenUnavailable(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, refused)
		h.load()
		h.wantStatus(TextLoading)
		// Step through the dispatches (retry pending, ticks, result) and
		// keep each new status.
		seen := []string{h.status()}
		for i := 0; i < 20 && seen[len(seen)-1] != TextUnavailable; i++ {
			h.eng.ConsumeNext()
			if st := h.status(); st != seen[len(seen)-1] {
				seen = append(seen, st)
			}
		}
		if got, want := strings.Join(seen, " > "), strings.Join([]string{TextLoading, TextRetrying, TextUnavailable}, " > "); got != want {
			t.Errorf("statuses = %s, want %s", got, want)
		}
		if got, want := fmt.Sprint(h.doer.times()), fmt.Sprint([]time.Duration{0, retryDelay, 2 * retryDelay}); got != want {
			t.Errorf("requests at %s, want %s (1 + 2 retries)", got, want)
		}
	})
}

// openBreaker runs three failing cycles (load, then two auto-refreshes);
// the breaker opens when the third one ends.
func openBreaker(h *harness) {
	h.t.Helper()
	h.load()
	h.settle()
	h.wantStatus(TextUnavailable)
	h.until(refresh + 2*retryDelay) // auto-refresh keeps going through errors
	h.wantStatus(TextUnavailable)
	h.until(2*refresh + 2*retryDelay)
	h.wantStatus(BreakerOpenText(time.Minute))
	if got, want := h.doer.hits(), 9; got != want {
		h.t.Fatalf("requests after 3 cycles = %d, want %d", got, want)
	}
}

func TestBreakerOpenCountsDownAndRecovers(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, refused)
		openBreaker(h) // at 2:05
		if got, want := h.status(), "Service temporarily unavailable - retrying in 60s"; got != want {
			t.Fatalf("status = %q, want %q", got, want)
		}
		for i := 1; i <= 3; i++ {
			h.advance(time.Second)
			if got, want := h.status(), fmt.Sprintf("Service temporarily unavailable - retrying in %ds", 60-i); got != want {
				t.Fatalf("after %d s: status = %q, want %q", i, got, want)
			}
		}
		// The auto-refresh at 3:00 comes while it is open: it sends nothing.
		h.until(3 * refresh)
		if got, want := h.doer.hits(), 9; got != want {
			t.Errorf("requests while open = %d, want %d", got, want)
		}
		h.wantStatus(BreakerOpenText(5 * time.Second))

		// The server is back; when the countdown ends the probe goes out.
		h.doer.script(ok(usage(30)))
		h.advance(4 * time.Second)
		h.wantStatus(BreakerOpenText(time.Second))
		h.advance(time.Second)
		h.wantStatus("")
		h.wantText("42% used")
		h.wantNoText("Cached")
		if got, want := h.doer.hits(), 10; got != want {
			t.Errorf("requests = %d, want %d (one probe)", got, want)
		}
		if got, want := h.br.State(), shared.StateClosed; got != want {
			t.Errorf("breaker = %v, want %v", got, want)
		}
	})
}

func TestRefreshButtonTriesWhileOpen(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, refused)
		openBreaker(h)
		h.doer.script(ok(usage(10)))
		h.on(func(ctx app.Context) { h.w.refreshNow(ctx) })
		if got, want := h.doer.hits(), 10; got != want {
			t.Fatalf("requests after the button = %d, want %d", got, want)
		}
		h.wantStatus("")
		h.wantText("42% used")
		if got, want := h.br.State(), shared.StateClosed; got != want {
			t.Errorf("breaker = %v, want %v", got, want)
		}
	})
}

func TestNoData(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, apiErr(404, shared.CodeNoData))
		h.load()
		h.settle()
		h.wantStatus(TextNoData)
		h.wantText("Waiting for data — start the scraper on your laptop")
		if got, want := h.doer.hits(), 1; got != want {
			t.Errorf("requests = %d, want %d (404 is not retried)", got, want)
		}
		if got, want := h.br.Failures(), 0; got != want {
			t.Errorf("breaker failures = %d, want %d", got, want)
		}
	})
}

func TestStaleWarningGrows(t *testing.T) {
	t.Run("20 min old data ages", func(t *testing.T) {
		inBubble(t, func(t *testing.T) {
			h := newHarness(t, ok(usage(20*60)))
			h.load()
			h.settle()
			h.wantStatus("")
			h.wantText("Data is 20 min old")
			h.advance(5 * time.Minute) // the refreshes bring the same, older data
			h.wantText("Data is 25 min old")
		})
	})
	t.Run("the warning starts at 10 min", func(t *testing.T) {
		inBubble(t, func(t *testing.T) {
			h := newHarness(t, ok(usage(9*60+59)))
			h.load()
			h.settle()
			h.wantNoText("min old")
			h.advance(time.Second)
			h.wantText("Data is 10 min old")
		})
	})
}

func TestCachedWhenFailing(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, ok(usage(30)))
		h.load()
		h.settle()
		h.wantNoText("Cached")
		h.doer.script(apiErr(503, shared.CodeStorageUnavailable))
		h.until(refresh + 2*retryDelay) // 3 attempts, 5 s of (fake) retry waits
		h.wantStatus(TextUnavailable)
		h.wantText("Cached 1 min ago", "42% used")
		h.until(2*refresh + 2*retryDelay)
		h.wantText("Cached 2 min ago", "42% used")
	})
}

func TestCachedAfterOfflineReload(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, refused)
		r := usage(60)
		if err := NewCache(h.store).SaveLast("", &r, t0.Add(-12*time.Minute)); err != nil {
			t.Fatal(err)
		}
		h.load()
		// Cached meters at once, no "Loading...".
		h.wantStatus("")
		h.wantText("Cached 12 min ago", "42% used")
		h.settle()
		h.wantStatus(TextUnavailable)
		h.wantText("Cached 12 min ago", "42% used")
	})
}

func TestUnauthorizedShowsForm(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, apiErr(401, shared.CodeAuthInvalidKey))
		h.load()
		h.settle()
		h.wantStatus(TextUnauthorized)
		if !strings.Contains(h.html(), `id="token-input"`) || !strings.Contains(h.html(), `<label for="token-input">Read token</label>`) {
			t.Fatalf("token form missing:\n%s", h.html())
		}
		if got, want := h.doer.hits(), 1; got != want {
			t.Errorf("requests = %d, want %d (401 is not retried)", got, want)
		}
		h.doer.script(ok(usage(10)))
		h.on(func(ctx app.Context) { h.w.saveToken(ctx, " new-token ") })
		if got, want := h.doer.last().Header.Get("Authorization"), "Bearer new-token"; got != want {
			t.Errorf("authorization = %q, want %q", got, want)
		}
		h.wantStatus("")
		h.wantText("42% used")
		if strings.Contains(h.html(), `id="token-input"`) {
			t.Error("form still shown after a good token")
		}
		if got, want := NewCache(h.store).Token(), "new-token"; got != want {
			t.Errorf("stored token = %q, want %q", got, want)
		}
	})
}

// Any token the server accepts works from the URL: the fragment is
// percent-decoded only, so a base64 token's '+' stays a '+'.
func TestWidgetTakesTokenFromFragment(t *testing.T) {
	tests := []struct {
		name, fragment, token string
	}{
		{"plain", "token=s3cret&view=compact", "s3cret"},
		{"base64 as pasted", "token=Zm9v+YmFy/cQ==&view=compact", "Zm9v+YmFy/cQ=="},
		{"base64 percent-encoded", "token=Zm9v%2BYmFy%2FcQ%3D%3D&view=compact", "Zm9v+YmFy/cQ=="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T) {
				h := newHarness(t, ok(usage(10)))
				h.page.fragment = tt.fragment
				h.load()
				h.settle()
				if got, want := NewCache(h.store).Token(), tt.token; got != want {
					t.Errorf("stored token = %q, want %q", got, want)
				}
				if got, want := strings.Join(h.page.replaced, "|"), "view=compact"; got != want {
					t.Errorf("fragment rewritten to %q, want %q", got, want)
				}
				if got, want := h.doer.last().Header.Get("Authorization"), "Bearer "+tt.token; got != want {
					t.Errorf("authorization = %q, want %q", got, want)
				}
				h.wantStatus("")
			})
		})
	}
}

func TestSettingsTakesAnyToken(t *testing.T) {
	for _, tok := range []string{"Zm9v+YmFy/cQ==", "a%2Bb", "3f9a0c1d2e"} {
		t.Run(tok, func(t *testing.T) {
			inBubble(t, func(t *testing.T) {
				h := newHarness(t, apiErr(401, shared.CodeAuthInvalidKey))
				h.load()
				h.settle()
				h.wantStatus(TextUnauthorized)
				h.doer.script(ok(usage(10)))
				h.on(func(ctx app.Context) { h.w.saveToken(ctx, tok) })
				// Pasted text is taken as it is: no decoding of any kind.
				if got, want := h.doer.last().Header.Get("Authorization"), "Bearer "+tok; got != want {
					t.Errorf("authorization = %q, want %q", got, want)
				}
				if got, want := NewCache(h.store).Token(), tok; got != want {
					t.Errorf("stored token = %q, want %q", got, want)
				}
				h.wantStatus("")
			})
		})
	}
}

// Removing the token (the button, or saving an empty one) also removes
// every cached response and the chosen account, and nothing else.
func TestRemovingTheTokenClearsCachedData(t *testing.T) {
	tests := []struct {
		name   string
		remove func(h *harness, ctx app.Context)
	}{
		{"remove button", func(h *harness, ctx app.Context) { h.w.forgetToken(ctx) }},
		{"save an empty token", func(h *harness, ctx app.Context) { h.w.saveToken(ctx, "  ") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inBubble(t, func(t *testing.T) {
				h := newHarness(t)
				c := NewCache(h.store)
				work := usage(10, shared.Meter{ID: "session", Label: "Current session", PercentUsed: 77})
				work.Account, work.Accounts = "work", []string{"default", "work"}
				def := usage(10)
				for _, err := range []error{
					c.SetToken("tok"), c.SetAccount("work"),
					c.SaveLast("work", &work, t0), c.SaveLast("", &def, t0),
					h.store.Set("other-app.setting", "kept"),
				} {
					if err != nil {
						t.Fatal(err)
					}
				}
				h.doer.script(ok(work))
				h.load()
				h.settle()
				h.wantText("77% used")
				h.on(func(ctx app.Context) { h.w.showSettings = true })
				if !strings.Contains(h.html(), `id="token-remove"`) {
					t.Fatalf("no remove button while a token is stored:\n%s", h.html())
				}

				h.doer.script(apiErr(401, shared.CodeAuthMissingKey))
				h.on(func(ctx app.Context) { tt.remove(h, ctx) })

				keys, err := h.store.Keys()
				if err != nil {
					t.Fatal(err)
				}
				if got, want := fmt.Sprint(keys), "[other-app.setting]"; got != want {
					t.Errorf("stored keys after removing the token = %s, want %s", got, want)
				}
				if got := h.doer.last().Header.Get("Authorization"); got != "" {
					t.Errorf("the next request still sent %q", got)
				}
				h.wantStatus(TextUnauthorized)
				h.wantNoText("77% used", "42% used", "Cached")
				if strings.Contains(h.html(), `id="token-remove"`) {
					t.Error("remove button shown without a token")
				}
			})
		})
	}
}

func TestPartialScraperProblemAndExtraUsage(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		r := usage(10)
		r.Partial = true
		r.ExtractionErrors = map[string]string{"weekly_opus": "not found"}
		r.ExtraUsage = &shared.ExtraUsage{Enabled: true, UsedCents: 1250, LimitCents: 5000, Currency: "USD"}
		r.Scraper = &shared.ScraperStatus{Account: "default", At: t0, OK: false, Category: shared.ScrapeNotLoggedIn}
		h := newHarness(t, ok(r))
		h.load()
		h.settle()
		h.wantText(TextPartial, "Scraper signed out — run", "Extra usage: $12.50 of $50.00")
		// The command is shown as code, never with the log's backticks.
		if page := h.html(); !regexp.MustCompile(`(?s)id="scraper-problem"[^>]*>\s*Scraper signed out — run\s*<code>usage-scraper login</code>\s*</p>`).MatchString(page) ||
			strings.Contains(page, "`") {
			t.Errorf("the next step is not rendered as text with <code>, without backticks:\n%s", page)
		}

		r.Partial, r.Scraper, r.ExtraUsage = false, &shared.ScraperStatus{OK: true}, nil
		h.doer.script(ok(r))
		h.advance(refresh)
		h.wantNoText(TextPartial, "Scraper signed out", "Extra usage")
	})
}

func TestBarLevels(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, ok(usage(10,
			shared.Meter{ID: "a", Label: "A", PercentUsed: 74.4},
			shared.Meter{ID: "b", Label: "B", PercentUsed: 75},
			shared.Meter{ID: "c", Label: "C", PercentUsed: 89.9},
			shared.Meter{ID: "d", Label: "D", PercentUsed: 90},
			shared.Meter{ID: "e", Label: "E", PercentUsed: 100},
		)))
		h.load()
		h.settle()
		want := map[string]string{"a": LevelOK, "b": LevelWarn, "c": LevelWarn, "d": LevelCritical, "e": LevelCritical}
		items := regexp.MustCompile(`(?s)<li[^>]*data-meter="([a-z]+)".*?</li>`).FindAllStringSubmatch(h.html(), -1)
		if len(items) != len(want) {
			t.Fatalf("meters rendered = %d, want %d\n%s", len(items), len(want), h.html())
		}
		for _, it := range items {
			if !strings.Contains(it[0], `class="meter-bar `+want[it[1]]+`"`) {
				t.Errorf("meter %s: want bar class %s in\n%s", it[1], want[it[1]], it[0])
			}
			if !strings.Contains(it[0], `role="progressbar"`) {
				t.Errorf("meter %s: bar without progressbar role", it[1])
			}
		}
	})
}

// A label that reorders its own display (from a server older than the
// text rules, or its cached answer) is shown without the override.
func TestBidiOverridesAreNotRendered(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, ok(usage(10, shared.Meter{ID: "session", Label: "Session \u202e%001", PercentUsed: 1, ResetsText: "Resets\u2067 soon\n"})))
		h.load()
		h.settle()
		page := h.html()
		for _, r := range []string{"\u202e", "\u2067", "Resets\u2067"} {
			if strings.Contains(page, r) {
				t.Errorf("page renders %q:\n%s", r, page)
			}
		}
		h.wantText("Session %001", "Resets soon")
	})
}

func TestAccountSwitcher(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		one := usage(10)
		h := newHarness(t, ok(one))
		h.load()
		h.settle()
		if strings.Contains(h.html(), `id="account-select"`) {
			t.Fatal("switcher shown with one account")
		}
		two := usage(10)
		two.Accounts = []string{"default", "work"}
		h.doer.script(ok(two))
		h.advance(refresh)
		page := h.html()
		if !strings.Contains(page, `id="account-select"`) || !strings.Contains(page, `<option value="work">work</option>`) {
			t.Fatalf("switcher missing:\n%s", page)
		}
		work := usage(10, shared.Meter{ID: "session", Label: "Current session", PercentUsed: 77})
		work.Account, work.Accounts = "work", two.Accounts
		h.doer.script(ok(work))
		h.on(func(ctx app.Context) { h.w.selectAccount(ctx, "work") })
		if got, want := h.doer.last().URL.Query().Get("account"), "work"; got != want {
			t.Errorf("account query = %q, want %q", got, want)
		}
		h.wantText("77% used")
		if got, want := NewCache(h.store).Account(), "work"; got != want {
			t.Errorf("stored account = %q, want %q", got, want)
		}
	})
}

func TestTimersPauseResumeAndStop(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, ok(usage(10)))
		h.load()
		h.settle()
		h.advance(refresh)
		if got, want := h.doer.hits(), 2; got != want {
			t.Fatalf("requests after a minute = %d, want %d (load + one refresh)", got, want)
		}
		h.page.onChange(false)
		h.settle()
		hiddenAt := h.w.now
		h.advance(5 * refresh)
		if got, want := h.doer.hits(), 2; got != want {
			t.Errorf("requests while hidden = %d, want %d", got, want)
		}
		if !h.w.now.Equal(hiddenAt) {
			t.Errorf("the second ticker ran while hidden (now moved from %v to %v)", hiddenAt, h.w.now)
		}
		h.page.onChange(true)
		h.settle()
		if got, want := h.doer.hits(), 3; got != want {
			t.Errorf("requests after showing = %d, want %d (refresh at once)", got, want)
		}
		h.advance(refresh)
		if got, want := h.doer.hits(), 4; got != want {
			t.Errorf("requests a minute after showing = %d, want %d (the refresh ticker runs again)", got, want)
		}
		// Dismount: loading another component replaces the widget; its
		// tickers end (the bubble would fail on a goroutine left behind).
		h.dismount()
		h.advance(5 * refresh)
		if got, want := h.doer.hits(), 4; got != want {
			t.Errorf("requests after dismount = %d, want %d", got, want)
		}
		if got, want := h.page.stopped, 1; got != want {
			t.Errorf("visibility listener stops = %d, want %d", got, want)
		}
	})
}

type other struct{ app.Compo }

func (o *other) Render() app.UI { return app.Div() }

func TestServerRenderShowsLoading(t *testing.T) {
	t.Parallel()
	// The route's widget has no deps on the host: the server's render
	// shows the loading state and starts nothing.
	eng := app.NewTestEngine()
	w := &Widget{}
	if err := eng.Load(w); err != nil {
		t.Fatal(err)
	}
	eng.ConsumeAll()
	if err := app.Match(app.Text(TextLoading), w, 0, 1, 0, 0); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateReadyOffersReload(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, ok(usage(10)))
		h.load()
		h.settle()
		h.wantNoText(TextUpdateReady)
		h.on(func(ctx app.Context) { h.w.OnAppUpdate(ctx) })
		h.wantText(TextUpdateReady)
		if !strings.Contains(h.html(), `id="reload"`) {
			t.Errorf("no reload button:\n%s", h.html())
		}
	})
}
