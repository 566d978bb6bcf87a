package app

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/claude-usage/widget/app/client"
	"github.com/claude-usage/widget/shared"
)

// Fetcher is what the widget needs from the API client (*client.Client).
type Fetcher interface {
	Fetch(ctx context.Context, req client.Request) client.Result
	Breaker() *shared.Breaker
	Stream(ctx context.Context, req client.StreamRequest) client.StreamEnd
	Series(ctx context.Context, req client.SeriesRequest) (*shared.SeriesResponse, error)
	Windows(ctx context.Context, req client.WindowsRequest) (*shared.WindowsResponse, error)
}

// Page is the browser around the widget.
type Page interface {
	// Fragment is the URL fragment without '#'.
	Fragment() string
	// ReplaceFragment rewrites the fragment without a history entry.
	ReplaceFragment(rest string)
	Visible() bool
	// OnVisibilityChange calls f when the page is hidden or shown again
	// until stop is called.
	OnVisibilityChange(f func(visible bool)) (stop func())
}

// Deps is everything the widget talks to. The browser's come from
// browserDeps; tests build their own. Time is not among them: the widget
// reads time.Now and runs Every's tickers, which the host tests fake with
// testing/synctest.
type Deps struct {
	Fetcher  Fetcher
	Cache    *Cache
	Settings Settings
	Location *time.Location
	Logger   client.Logger
	Page     Page

	// startOnPreRender starts the widget from OnPreRender: go-app calls
	// OnMount only in the browser, and its test engine runs on the host.
	startOnPreRender bool
}

type status int

const (
	stNone status = iota
	stOK
	stNoData
	stUnauthorized
	stUnavailable
	stBreakerOpen
)

type phase int

const (
	phIdle phase = iota
	phLoading
	phRetrying
)

// Widget is the whole page: the meters of one account and why they might
// be old. Its fields are only touched on go-app's UI goroutine; fetches run
// in ctx.Async and report back through ctx.Dispatch.
type Widget struct {
	app.Compo

	deps *Deps

	started      bool
	ctx          app.Context // the widget's own context, for callbacks
	runCtx       context.Context
	stopRun      context.CancelFunc
	stopTimers   context.CancelFunc
	timersCtx    context.Context // ends with stopTimers: the stream lives in it
	stopFetch    context.CancelFunc
	stopVisible  func()
	gen          int
	phase        phase
	status       status
	data         *shared.UsageResponse
	receivedAt   time.Time // when data arrived (from the server or, for cached data, originally)
	fromCache    bool      // data has not been confirmed by a fetch since the page loaded
	account      string
	token        string
	tokenInput   string
	showSettings bool
	storageNote  string
	updateReady  bool
	now          time.Time

	live   liveState
	sparks map[string]*spark
	hist   *historyState
}

// NewWidget returns a widget with the given dependencies.
func NewWidget(d *Deps) *Widget { return &Widget{deps: d} }

// OnMount starts the widget in the browser.
func (w *Widget) OnMount(ctx app.Context) {
	if w.deps == nil {
		w.deps = browserDeps()
		// In the browser go-app's start and the shell's first render are
		// one long task; the widget's own start (token, cache, the first
		// fetch and its render, timers) takes the next one, so the page
		// can paint and take input in between.
		afterTask(func() { ctx.Dispatch(func(ctx app.Context) { w.start(ctx) }) })
		return
	}
	w.start(ctx)
}

// OnPreRender runs on the host only: the server's render shows the
// loading state; host tests use it to start the widget with fakes.
func (w *Widget) OnPreRender(ctx app.Context) {
	if w.deps != nil && w.deps.startOnPreRender {
		w.start(ctx)
	}
}

// OnAppUpdate is called by go-app when the service worker has installed a
// newer build: the page offers a reload instead of forcing one.
func (w *Widget) OnAppUpdate(ctx app.Context) {
	w.updateReady = true
	w.log().Info("a new version of the widget is ready")
}

// OnDismount stops every timer, listener and fetch.
func (w *Widget) OnDismount() {
	if w.stopVisible != nil {
		w.stopVisible()
		w.stopVisible = nil
	}
	if w.stopRun != nil {
		w.stopRun()
	}
	w.started = false
}

func (w *Widget) log() client.Logger {
	if w.deps == nil || w.deps.Logger == nil {
		return NewConsoleLogger(io.Discard, "widget", nil)
	}
	return w.deps.Logger
}

func (w *Widget) start(ctx app.Context) {
	if w.started || w.deps == nil {
		return
	}
	w.started = true
	w.ctx = ctx
	d := w.deps
	w.runCtx, w.stopRun = context.WithCancel(context.Background())
	w.now = time.Now()

	if tok, rest, ok := TokenFromFragment(d.Page.Fragment()); ok {
		if err := d.Cache.SetToken(tok); err != nil {
			w.storageNote = "The token could not be saved in this browser; it is kept until the page closes."
			w.log().Warn("saving the token", "error", err.Error())
		}
		w.token = tok
		d.Page.ReplaceFragment(rest)
		w.log().Info("token taken from the URL fragment")
	} else {
		w.token = d.Cache.Token()
	}
	w.account = d.Cache.Account()
	if c, ok := d.Cache.LoadLast(w.account); ok {
		w.data, w.receivedAt, w.fromCache = c.Response, c.SavedAt, true
		w.log().Info("showing cached data", "account", w.account, "savedAt", c.SavedAt.Format(time.RFC3339))
	}

	w.stopVisible = d.Page.OnVisibilityChange(func(visible bool) {
		ctx.Dispatch(func(ctx app.Context) { w.setVisible(ctx, visible) })
	})
	if d.Page.Visible() {
		w.startTimers(ctx)
		w.fetch(ctx, false)
	}
}

// setVisible pauses the timers while the page is hidden and, when it comes
// back, refreshes at once and restarts them.
func (w *Widget) setVisible(ctx app.Context, visible bool) {
	if !w.started {
		return
	}
	if !visible {
		w.log().Info("page hidden: timers paused")
		w.stopTimersNow()
		return
	}
	if w.stopTimers != nil {
		return // already running
	}
	w.log().Info("page visible: timers resumed")
	w.now = time.Now()
	w.startTimers(ctx)
	w.fetch(ctx, false)
}

func (w *Widget) startTimers(ctx app.Context) {
	tctx, cancel := context.WithCancel(w.runCtx)
	w.stopTimers = cancel
	w.timersCtx = tctx
	Every(tctx, time.Second, func() {
		ctx.Dispatch(func(ctx app.Context) { w.tick(ctx) })
	})
	Every(tctx, w.deps.Settings.Refresh, func() {
		ctx.Dispatch(func(ctx app.Context) { w.autoRefresh(ctx) })
	})
}

func (w *Widget) stopTimersNow() {
	w.stopStream()
	if w.stopTimers != nil {
		w.stopTimers()
		w.stopTimers = nil
	}
}

// tick advances the countdowns; when an open breaker's cooldown is over it
// sends the half-open probe instead of waiting for the next refresh.
func (w *Widget) tick(ctx app.Context) {
	w.now = time.Now()
	if w.status == stBreakerOpen && w.phase == phIdle && w.deps.Fetcher.Breaker().RetryIn() == 0 {
		w.fetch(ctx, false)
	}
	w.maybeStream()
}

func (w *Widget) autoRefresh(ctx app.Context) {
	w.now = time.Now()
	if w.phase != phIdle {
		return // a cycle (with its retries) is still running
	}
	if w.live.running {
		// The stream brings every new snapshot; while it connects (at
		// most the attempt timeout) a poll would only fetch the same.
		return
	}
	w.fetch(ctx, false)
}

// refreshNow is the refresh button: it always tries, even with the breaker
// open, and replaces a cycle that is waiting for its retry.
func (w *Widget) refreshNow(ctx app.Context) {
	w.log().Info("manual refresh")
	w.now = time.Now()
	w.fetch(ctx, true)
}

func (w *Widget) fetch(_ app.Context, manual bool) {
	if !w.started {
		return
	}
	// Always the widget's own context: a click handler's context belongs
	// to its button, and go-app drops dispatches of an element that the
	// next render removed (the token form's Save button), which would
	// leave the cycle's result unapplied and the widget stuck.
	ctx := w.ctx
	if w.phase != phIdle {
		if !manual {
			return
		}
		if w.stopFetch != nil {
			w.stopFetch()
		}
	}
	w.gen++
	gen := w.gen
	fctx, cancel := context.WithCancel(w.runCtx)
	w.stopFetch = cancel
	w.phase = phLoading
	req := client.Request{Account: w.account, Token: w.token, Manual: manual}
	req.OnRetry = func(client.RetryEvent) {
		ctx.Dispatch(func(ctx app.Context) {
			if w.gen == gen {
				w.phase = phRetrying
			}
		})
	}
	f := w.deps.Fetcher
	ctx.Async(func() {
		res := f.Fetch(fctx, req)
		ctx.Dispatch(func(ctx app.Context) {
			cancel()
			if w.gen != gen {
				return // replaced by a manual refresh
			}
			w.apply(res)
		})
	})
}

func (w *Widget) apply(res client.Result) {
	d := w.deps
	w.phase = phIdle
	w.stopFetch = nil
	w.now = time.Now()
	// Settings close by themselves only when they opened for a missing
	// token: a refresh must not close them under the user's hands (the
	// Notifications settings live there too).
	askedForToken := w.status == stUnauthorized
	switch res.Kind {
	case client.KindOK:
		if askedForToken {
			w.showSettings = false
		}
		w.applyData(res.Data)
		w.live.needPoll = false
		w.maybeStream()
	case client.KindNoData:
		w.status = stNoData
		w.data, w.fromCache = nil, false
	case client.KindUnauthorized:
		w.status = stUnauthorized
		w.showSettings = true
	case client.KindBreakerOpen:
		w.status = stBreakerOpen
	default:
		w.status = stUnavailable
		if d.Fetcher.Breaker().State() == shared.StateOpen {
			w.status = stBreakerOpen
		}
	}
}

// applyData shows a good answer, from a fetch or the stream, and keeps
// it as the last good data.
func (w *Widget) applyData(data *shared.UsageResponse) {
	w.status = stOK
	w.data, w.receivedAt, w.fromCache = data, w.now, false
	if err := w.deps.Cache.SaveLast(w.account, data, w.now); err != nil {
		w.log().Warn("caching the response", "error", err.Error())
	}
	w.updateSparks()
}

// selectAccount switches to another account: its cached data at once,
// then a fetch.
func (w *Widget) selectAccount(ctx app.Context, account string) {
	if account == w.account {
		return
	}
	w.account = account
	w.resetStream()
	w.sparks, w.hist = nil, nil
	if err := w.deps.Cache.SetAccount(account); err != nil {
		w.log().Warn("saving the account", "error", err.Error())
	}
	w.data, w.fromCache = nil, false
	if c, ok := w.deps.Cache.LoadLast(account); ok {
		w.data, w.receivedAt, w.fromCache = c.Response, c.SavedAt, true
	}
	w.fetch(ctx, true)
}

// saveToken stores the token from the settings form and tries it at once;
// saving an empty one removes it.
func (w *Widget) saveToken(ctx app.Context, token string) {
	token = strings.TrimSpace(token)
	if token == "" {
		w.forgetToken(ctx)
		return
	}
	w.token = token
	w.storageNote = ""
	w.resetStream()
	if err := w.deps.Cache.SetToken(token); err != nil {
		w.storageNote = "The token could not be saved in this browser; it is kept until the page closes."
		w.log().Warn("saving the token", "error", err.Error())
	}
	w.showSettings = false
	w.tokenInput = ""
	w.fetch(ctx, true)
}

// forgetToken removes the token and, with it, everything the widget kept
// of the server's data (every account's cached response, the chosen
// account): whoever uses this browser next sees nothing of it. The fetch
// that follows goes without a token, so the server asks for one again.
func (w *Widget) forgetToken(ctx app.Context) {
	w.token, w.tokenInput, w.storageNote = "", "", ""
	if err := w.deps.Cache.Forget(); err != nil {
		w.storageNote = "Some stored data could not be removed from this browser."
		w.log().Warn("removing the stored data", "error", err.Error())
	}
	w.account = ""
	w.resetStream()
	w.sparks, w.hist = nil, nil
	w.data, w.receivedAt, w.fromCache = nil, time.Time{}, false
	w.status = stNone
	w.log().Info("token removed with the cached data")
	w.fetch(ctx, true)
}
