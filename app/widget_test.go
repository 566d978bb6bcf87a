//go:build !(js && wasm)

package app

import (
	"bytes"
	"context"
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
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/claude-usage/widget/app/client"
	"github.com/claude-usage/widget/shared"
)

// The component tests run the widget in go-app's test engine with the real
// client (retry and breaker) over a scripted transport, a fake clock whose
// sleeps return at once, a fake scheduler whose timers the test fires, and
// a fake page. Time never passes for real.

var t0 = time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return nil
}

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
}

func (d *fakeDoer) script(s ...step) {
	d.mu.Lock()
	d.steps = append(d.steps[:0], s...)
	d.mu.Unlock()
}

func (d *fakeDoer) Do(r *http.Request) (*http.Response, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reqs = append(d.reqs, r)
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
	b, _ := json.Marshal(s.body)
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

type timer struct {
	ctx context.Context
	d   time.Duration
	f   func()
}

type fakeScheduler struct {
	mu     sync.Mutex
	timers []timer
}

func (s *fakeScheduler) Every(ctx context.Context, d time.Duration, f func()) {
	s.mu.Lock()
	s.timers = append(s.timers, timer{ctx, d, f})
	s.mu.Unlock()
}

// fire runs the live timers of period d once.
func (s *fakeScheduler) fire(d time.Duration) int {
	s.mu.Lock()
	var fs []func()
	for _, t := range s.timers {
		if t.d == d && t.ctx.Err() == nil {
			fs = append(fs, t.f)
		}
	}
	s.mu.Unlock()
	for _, f := range fs {
		f()
	}
	return len(fs)
}

func (s *fakeScheduler) live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, t := range s.timers {
		if t.ctx.Err() == nil {
			n++
		}
	}
	return n
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
	clock *fakeClock
	doer  *fakeDoer
	sched *fakeScheduler
	page  *fakePage
	store *MemoryStorage
	br    *shared.Breaker
	ctx   app.Context
}

const refresh = 60 * time.Second

func newHarness(t *testing.T, steps ...step) *harness {
	t.Helper()
	h := &harness{
		t:     t,
		eng:   app.NewTestEngine(),
		clock: &fakeClock{now: t0},
		doer:  &fakeDoer{},
		sched: &fakeScheduler{},
		page:  &fakePage{visible: true},
		store: NewMemoryStorage(),
	}
	h.doer.script(steps...)
	h.br = shared.NewBreaker(shared.BreakerConfig{Name: "widget", Now: h.clock.Now})
	c, err := client.New(client.Config{
		BaseURL: "http://127.0.0.1:1", HTTP: h.doer, Sleep: h.clock.Sleep, Now: h.clock.Now, Breaker: h.br,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.w = NewWidget(&Deps{
		Fetcher:          c,
		Cache:            NewCache(h.store),
		Settings:         Settings{Refresh: refresh, RetryDelay: 2 * time.Second, BreakerThreshold: 3, BreakerCooldown: time.Minute},
		Now:              h.clock.Now,
		Location:         time.UTC,
		Every:            h.sched.Every,
		Page:             h.page,
		startOnPreRender: true,
	})
	return h
}

// load mounts the widget; OnPreRender starts it (first fetch in flight).
func (h *harness) load() {
	h.t.Helper()
	if err := h.eng.Load(h.w); err != nil {
		h.t.Fatal(err)
	}
	h.eng.ConsumeNext()
}

// settle runs every pending dispatch and async fetch.
func (h *harness) settle() { h.eng.ConsumeAll() }

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
		h.t.Fatalf("status = %q, want %q\n%s", got, want, h.html())
	}
}

func (h *harness) wantText(texts ...string) {
	h.t.Helper()
	for _, s := range texts {
		if !h.has(s) {
			h.t.Errorf("page lacks %q\n%s", s, h.html())
		}
	}
}

func (h *harness) wantNoText(texts ...string) {
	h.t.Helper()
	for _, s := range texts {
		if h.has(s) {
			h.t.Errorf("page shows %q\n%s", s, h.html())
		}
	}
}

// refreshCycle fires the auto-refresh timer and lets the cycle finish.
func (h *harness) refreshCycle() {
	h.t.Helper()
	if n := h.sched.fire(refresh); n != 1 {
		h.t.Fatalf("live refresh timers = %d, want 1", n)
	}
	h.settle()
}

// tick advances the clock by d and fires the one-second timer.
func (h *harness) tick(d time.Duration) {
	h.t.Helper()
	h.clock.Advance(d)
	if n := h.sched.fire(time.Second); n != 1 {
		h.t.Fatalf("live second timers = %d, want 1", n)
	}
	h.settle()
}

func resetAt(d time.Duration) *time.Time {
	t := t0.Add(d)
	return &t
}

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
	t.Parallel()
	h := newHarness(t, ok(usage(60)))
	h.load()
	h.wantStatus(TextLoading)
	h.settle()
	h.wantStatus("")
	h.wantText("Current session", "42% used", "Resets in 2 h 10 min", "All models", "18% used", "Resets Wed 09:00")
	h.wantNoText(TextLoading, "Cached", "min old")
	if got, want := h.doer.hits(), 1; got != want {
		t.Errorf("requests = %d, want %d", got, want)
	}
	if _, ok := NewCache(h.store).LoadLast(""); !ok {
		t.Error("the good response was not cached")
	}
}

func TestRetryingThenUnavailable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, refused)
	h.load()
	h.wantStatus(TextLoading)
	// The cycle has run (fake sleeps); its dispatches are replayed one
	// frame at a time: retry pending, retry pending, result.
	h.eng.ConsumeNext()
	h.wantStatus(TextRetrying)
	h.eng.ConsumeNext()
	h.wantStatus(TextRetrying)
	h.eng.ConsumeNext()
	h.wantStatus(TextUnavailable)
	if got, want := h.doer.hits(), 3; got != want {
		t.Errorf("requests = %d, want 1 + 2 retries", got)
	}
	h.clock.mu.Lock()
	sleeps := append([]time.Duration(nil), h.clock.sleeps...)
	h.clock.mu.Unlock()
	if len(sleeps) != 2 || sleeps[0] != 2*time.Second || sleeps[1] != 2*time.Second {
		t.Errorf("waits = %v, want [2s 2s]", sleeps)
	}
}

func TestBreakerOpenCountsDownAndRecovers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, refused)
	h.load()
	h.settle()
	h.wantStatus(TextUnavailable)
	h.refreshCycle() // auto-refresh keeps going through errors
	h.wantStatus(TextUnavailable)
	h.refreshCycle()
	h.wantStatus(BreakerOpenText(time.Minute))
	if got, want := h.status(), "Service temporarily unavailable - retrying in 60s"; got != want {
		t.Fatalf("status = %q, want %q", got, want)
	}
	hits := h.doer.hits()
	if hits != 9 {
		t.Fatalf("requests after 3 cycles = %d, want 9", hits)
	}
	for i := 1; i <= 3; i++ {
		h.tick(time.Second)
		if got, want := h.status(), fmt.Sprintf("Service temporarily unavailable - retrying in %ds", 60-i); got != want {
			t.Fatalf("after %d s: status = %q, want %q", i, got, want)
		}
	}
	// An auto-refresh while open sends nothing.
	h.refreshCycle()
	if got := h.doer.hits(); got != hits {
		t.Errorf("requests while open = %d, want %d", got, hits)
	}
	h.wantStatus(BreakerOpenText(57 * time.Second))

	// The server is back; when the countdown ends the probe goes out.
	h.doer.script(ok(usage(30)))
	h.tick(56 * time.Second)
	h.wantStatus(BreakerOpenText(time.Second))
	h.tick(time.Second)
	h.wantStatus("")
	h.wantText("42% used")
	h.wantNoText("Cached")
	if got, want := h.doer.hits(), hits+1; got != want {
		t.Errorf("requests = %d, want %d (one probe)", got, want)
	}
	if got, want := h.br.State(), shared.StateClosed; got != want {
		t.Errorf("breaker = %v, want %v", got, want)
	}
}

func TestRefreshButtonTriesWhileOpen(t *testing.T) {
	t.Parallel()
	h := newHarness(t, refused)
	h.load()
	h.settle()
	h.refreshCycle()
	h.refreshCycle()
	h.wantStatus(BreakerOpenText(time.Minute))
	hits := h.doer.hits()
	h.doer.script(ok(usage(10)))
	h.on(func(ctx app.Context) { h.w.refreshNow(ctx) })
	if got, want := h.doer.hits(), hits+1; got != want {
		t.Fatalf("requests after the button = %d, want %d", got, want)
	}
	h.wantStatus("")
	h.wantText("42% used")
	if got, want := h.br.State(), shared.StateClosed; got != want {
		t.Errorf("breaker = %v, want %v", got, want)
	}
}

func TestNoData(t *testing.T) {
	t.Parallel()
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
}

func TestStaleWarningGrows(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ok(usage(20*60)))
	h.load()
	h.settle()
	h.wantStatus("")
	h.wantText("Data is 20 min old")
	h.tick(5 * time.Minute)
	h.wantText("Data is 25 min old")

	h2 := newHarness(t, ok(usage(9*60+59)))
	h2.load()
	h2.settle()
	h2.wantNoText("min old")
	h2.tick(time.Second)
	h2.wantText("Data is 10 min old")
}

func TestCachedWhenFailing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ok(usage(30)))
	h.load()
	h.settle()
	h.wantNoText("Cached")
	h.doer.script(apiErr(503, shared.CodeStorageUnavailable))
	h.clock.Advance(12 * time.Minute)
	h.refreshCycle() // 3 attempts, 4 s of (fake) retry waits
	h.wantStatus(TextUnavailable)
	h.wantText("Cached 12 min ago", "42% used")
	h.tick(time.Minute)
	h.wantText("Cached 13 min ago")
}

func TestCachedAfterOfflineReload(t *testing.T) {
	t.Parallel()
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
}

func TestUnauthorizedShowsForm(t *testing.T) {
	t.Parallel()
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
}

func TestWidgetTakesTokenFromFragment(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ok(usage(10)))
	h.page.fragment = "token=s3cret&view=compact"
	h.load()
	h.settle()
	if got, want := NewCache(h.store).Token(), "s3cret"; got != want {
		t.Errorf("stored token = %q, want %q", got, want)
	}
	if got, want := strings.Join(h.page.replaced, "|"), "view=compact"; got != want {
		t.Errorf("fragment rewritten to %q, want %q", got, want)
	}
	if got, want := h.doer.last().Header.Get("Authorization"), "Bearer s3cret"; got != want {
		t.Errorf("authorization = %q, want %q", got, want)
	}
}

func TestPartialScraperProblemAndExtraUsage(t *testing.T) {
	t.Parallel()
	r := usage(10)
	r.Partial = true
	r.ExtractionErrors = map[string]string{"weekly_opus": "not found"}
	r.ExtraUsage = &shared.ExtraUsage{Enabled: true, UsedCents: 1250, LimitCents: 5000, Currency: "USD"}
	r.Scraper = &shared.ScraperStatus{Account: "default", At: t0, OK: false, Category: shared.ScrapeNotLoggedIn}
	h := newHarness(t, ok(r))
	h.load()
	h.settle()
	h.wantText(TextPartial, "Scraper signed out — run `usage-scraper login`", "Extra usage: $12.50 of $50.00")

	r.Partial, r.Scraper, r.ExtraUsage = false, &shared.ScraperStatus{OK: true}, nil
	h.doer.script(ok(r))
	h.refreshCycle()
	h.wantNoText(TextPartial, "Scraper signed out", "Extra usage")
}

func TestBarLevels(t *testing.T) {
	t.Parallel()
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
}

func TestAccountSwitcher(t *testing.T) {
	t.Parallel()
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
	h.refreshCycle()
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
}

func TestTimersPauseResumeAndStop(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ok(usage(10)))
	h.load()
	h.settle()
	if got, want := h.sched.live(), 2; got != want {
		t.Fatalf("live timers = %d, want %d (second + refresh)", got, want)
	}
	h.page.onChange(false)
	h.settle()
	if got, want := h.sched.live(), 0; got != want {
		t.Fatalf("live timers while hidden = %d, want %d", got, want)
	}
	hits := h.doer.hits()
	h.page.onChange(true)
	h.settle()
	if got, want := h.sched.live(), 2; got != want {
		t.Fatalf("live timers after showing = %d, want %d", got, want)
	}
	if got, want := h.doer.hits(), hits+1; got != want {
		t.Errorf("requests after showing = %d, want %d (refresh at once)", got, want)
	}
	// Dismount: loading another component replaces the widget.
	if err := h.eng.Load(&other{}); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if got, want := h.sched.live(), 0; got != want {
		t.Errorf("live timers after dismount = %d, want %d", got, want)
	}
	if got, want := h.page.stopped, 1; got != want {
		t.Errorf("visibility listener stops = %d, want %d", got, want)
	}
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
	t.Parallel()
	h := newHarness(t, ok(usage(10)))
	h.load()
	h.settle()
	h.wantNoText(TextUpdateReady)
	h.on(func(ctx app.Context) { h.w.OnAppUpdate(ctx) })
	h.wantText(TextUpdateReady)
	if !strings.Contains(h.html(), `id="reload"`) {
		t.Errorf("no reload button:\n%s", h.html())
	}
}
