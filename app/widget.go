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

// Fetcher is what the widget needs from the API client; tests give a fake.
type Fetcher interface {
	Fetch(ctx context.Context, req client.Request) client.Result
	Breaker() *shared.Breaker
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
// browserDeps; tests build their own.
type Deps struct {
	Fetcher  Fetcher
	Cache    *Cache
	Settings Settings
	Now      func() time.Time
	Location *time.Location
	Logger   client.Logger
	// Every calls f every d until ctx ends.
	Every func(ctx context.Context, d time.Duration, f func())
	Page  Page

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
}

// NewWidget returns a widget with the given dependencies.
func NewWidget(d *Deps) *Widget { return &Widget{deps: d} }

// OnMount starts the widget in the browser.
func (w *Widget) OnMount(ctx app.Context) {
	if w.deps == nil {
		w.deps = browserDeps()
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
	w.now = d.Now()

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
	w.now = w.deps.Now()
	w.startTimers(ctx)
	w.fetch(ctx, false)
}

func (w *Widget) startTimers(ctx app.Context) {
	tctx, cancel := context.WithCancel(w.runCtx)
	w.stopTimers = cancel
	w.deps.Every(tctx, time.Second, func() {
		ctx.Dispatch(func(ctx app.Context) { w.tick(ctx) })
	})
	w.deps.Every(tctx, w.deps.Settings.Refresh, func() {
		ctx.Dispatch(func(ctx app.Context) { w.autoRefresh(ctx) })
	})
}

func (w *Widget) stopTimersNow() {
	if w.stopTimers != nil {
		w.stopTimers()
		w.stopTimers = nil
	}
}

// tick advances the countdowns; when an open breaker's cooldown is over it
// sends the half-open probe instead of waiting for the next refresh.
func (w *Widget) tick(ctx app.Context) {
	w.now = w.deps.Now()
	if w.status == stBreakerOpen && w.phase == phIdle && w.deps.Fetcher.Breaker().RetryIn() == 0 {
		w.fetch(ctx, false)
	}
}

func (w *Widget) autoRefresh(ctx app.Context) {
	w.now = w.deps.Now()
	if w.phase != phIdle {
		return // a cycle (with its retries) is still running
	}
	w.fetch(ctx, false)
}

// refreshNow is the refresh button: it always tries, even with the breaker
// open, and replaces a cycle that is waiting for its retry.
func (w *Widget) refreshNow(ctx app.Context) {
	w.log().Info("manual refresh")
	w.now = w.deps.Now()
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
	w.now = d.Now()
	switch res.Kind {
	case client.KindOK:
		w.status = stOK
		w.data, w.receivedAt, w.fromCache = res.Data, w.now, false
		w.showSettings = false
		if err := d.Cache.SaveLast(w.account, res.Data, w.now); err != nil {
			w.log().Warn("caching the response", "error", err.Error())
		}
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

// selectAccount switches to another account: its cached data at once,
// then a fetch.
func (w *Widget) selectAccount(ctx app.Context, account string) {
	if account == w.account {
		return
	}
	w.account = account
	if err := w.deps.Cache.SetAccount(account); err != nil {
		w.log().Warn("saving the account", "error", err.Error())
	}
	w.data, w.fromCache = nil, false
	if c, ok := w.deps.Cache.LoadLast(account); ok {
		w.data, w.receivedAt, w.fromCache = c.Response, c.SavedAt, true
	}
	w.fetch(ctx, true)
}

// saveToken stores the token from the settings form and tries it at once.
func (w *Widget) saveToken(ctx app.Context, token string) {
	token = strings.TrimSpace(token)
	w.token = token
	w.storageNote = ""
	if err := w.deps.Cache.SetToken(token); err != nil {
		w.storageNote = "The token could not be saved in this browser; it is kept until the page closes."
		w.log().Warn("saving the token", "error", err.Error())
	}
	w.showSettings = false
	w.tokenInput = ""
	w.fetch(ctx, true)
}

// view is what the page shows, derived from the state; Render only lays
// it out.
type view struct {
	statusText string
	hint       string
	cached     string
	stale      string
}

func (w *Widget) view() view {
	var v view
	now := w.now
	switch {
	case w.phase == phRetrying:
		v.statusText = TextRetrying
	case w.status == stBreakerOpen:
		v.statusText = BreakerOpenText(w.deps.Fetcher.Breaker().RetryIn())
	case w.status == stUnavailable:
		v.statusText = TextUnavailable
	case w.status == stUnauthorized:
		v.statusText = TextUnauthorized
	case w.status == stNoData:
		v.statusText = TextNoData
		v.hint = TextNoDataHint
	case w.data == nil && (w.phase == phLoading || w.status == stNone):
		v.statusText = TextLoading
	}
	if w.data != nil {
		failing := w.status == stUnavailable || w.status == stBreakerOpen || w.status == stUnauthorized ||
			w.phase == phRetrying
		if w.fromCache || failing {
			v.cached = CachedText(now.Sub(w.receivedAt))
		}
		age := time.Duration(w.data.AgeSeconds)*time.Second + now.Sub(w.receivedAt)
		if age >= shared.StaleAfter {
			v.stale = StaleText(age)
		}
	}
	return v
}

// Render lays out the page. The first children keep their positions in
// every state (tests address them by path).
func (w *Widget) Render() app.UI {
	if w.deps == nil {
		// The server's render and the first paint before OnMount.
		return w.layout(view{statusText: TextLoading}, nil)
	}
	return w.layout(w.view(), w.data)
}

func (w *Widget) layout(v view, data *shared.UsageResponse) app.UI {
	return app.Main().Class("widget").Body(
		app.Header().Class("bar-top").Body(
			app.H1().Text("Claude usage"),
			app.Div().Class("actions").Body(
				app.Button().ID("refresh").Class("btn").Type("button").
					Aria("label", "Refresh now").Title("Refresh now").
					OnClick(func(ctx app.Context, e app.Event) { w.refreshNow(ctx) }).
					Text("↻ Refresh"),
				app.Button().ID("settings-toggle").Class("btn").Type("button").
					Aria("expanded", w.showSettings).Aria("controls", "settings").
					OnClick(func(ctx app.Context, e app.Event) { w.showSettings = !w.showSettings }).
					Text("Settings"),
			),
		),
		app.Div().ID("status").Class("status").Role("status").Aria("live", "polite").Body(
			app.P().ID("status-text").Class("status-text "+statusClass(v)).Text(v.statusText),
			app.If(v.hint != "", func() app.UI {
				return app.P().ID("status-hint").Class("hint").Text(v.hint)
			}),
		),
		app.Div().ID("notes").Class("notes").Body(
			app.If(v.cached != "", func() app.UI {
				return app.P().ID("cached").Class("note note-cached").Text(v.cached)
			}),
			app.If(v.stale != "", func() app.UI {
				return app.P().ID("stale").Class("note note-stale").Text(v.stale)
			}),
			app.If(data != nil && data.Partial, func() app.UI {
				return app.P().ID("partial").Class("note note-partial").Text(TextPartial)
			}),
			app.If(data != nil && ScraperProblemText(data.Scraper) != "", func() app.UI {
				return app.P().ID("scraper-problem").Class("note note-scraper").Text(ScraperProblemText(data.Scraper))
			}),
			app.If(w.storageNote != "", func() app.UI {
				return app.P().Class("note").Text(w.storageNote)
			}),
			app.If(w.updateReady, func() app.UI {
				return app.P().ID("update").Class("note").Body(
					app.Text(TextUpdateReady+" "),
					app.Button().ID("reload").Class("btn").Type("button").
						OnClick(func(ctx app.Context, e app.Event) { ctx.Reload() }).
						Text("Reload"),
				)
			}),
		),
		w.renderAccounts(data),
		w.renderMeters(data),
		w.renderSettings(),
	)
}

func statusClass(v view) string {
	switch v.statusText {
	case "":
		return "status-empty"
	case TextLoading:
		return "status-loading"
	case TextNoData:
		return "status-empty-data"
	}
	return "status-problem"
}

func (w *Widget) renderAccounts(data *shared.UsageResponse) app.UI {
	if data == nil || len(data.Accounts) < 2 {
		return app.Div().ID("accounts").Hidden(true)
	}
	current := w.account
	if current == "" {
		current = data.Account
	}
	return app.Div().ID("accounts").Class("accounts").Body(
		app.Label().For("account-select").Text("Account"),
		app.Select().ID("account-select").
			OnChange(func(ctx app.Context, e app.Event) {
				w.selectAccount(ctx, ctx.JSSrc().Get("value").String())
			}).
			Body(app.Range(data.Accounts).Slice(func(i int) app.UI {
				a := data.Accounts[i]
				o := app.Option().Value(a).Text(a)
				if a == current {
					o = o.Selected(true)
				}
				return o
			})),
	)
}

func (w *Widget) renderMeters(data *shared.UsageResponse) app.UI {
	if data == nil {
		return app.Section().ID("meters").Class("meters").Aria("label", "Usage limits")
	}
	now := w.now
	var loc *time.Location
	if w.deps != nil {
		loc = w.deps.Location
	}
	extra := ExtraUsageText(data.ExtraUsage)
	return app.Section().ID("meters").Class("meters").Aria("label", "Usage limits").Body(
		app.Ul().Class("meter-list").Body(
			app.Range(data.Meters).Slice(func(i int) app.UI {
				m := data.Meters[i]
				pct := m.PercentUsed
				width := pct
				if width < 0 {
					width = 0
				} else if width > 100 {
					width = 100
				}
				return app.Li().Class("meter").DataSet("meter", m.ID).Body(
					app.Div().Class("meter-head").Body(
						app.Span().Class("meter-label").ID("label-"+m.ID).Text(m.Label),
						app.Span().Class("meter-percent").Text(PercentText(pct)+" used"),
					),
					app.Div().Class("meter-bar "+Level(pct)).Role("progressbar").
						Aria("labelledby", "label-"+m.ID).
						Aria("valuemin", 0).Aria("valuemax", 100).Aria("valuenow", strings.TrimSuffix(PercentText(pct), "%")).
						Body(app.Div().Class("meter-fill").Style("width", FormatPercentWidth(width))),
					app.P().Class("meter-reset").Text(ResetText(m.ResetsAt, m.ResetsText, now, loc)),
				)
			}),
		),
		app.If(extra != "", func() app.UI {
			return app.P().ID("extra-usage").Class("extra").Text(extra)
		}),
	)
}

// FormatPercentWidth is the CSS width of a bar's fill.
func FormatPercentWidth(p float64) string {
	return strings.TrimSuffix(PercentText(p), "%") + "%"
}

func (w *Widget) renderSettings() app.UI {
	if !w.showSettings {
		return app.Div().ID("settings").Hidden(true)
	}
	// Not a <form>: go-app runs Go handlers after the JS event returns, so
	// PreventDefault would come too late and a submit would put the token
	// into the URL.
	save := func(ctx app.Context) {
		v := w.tokenInput
		if el := app.Window().GetElementByID("token-input"); el.Truthy() {
			v = el.Get("value").String()
		}
		w.saveToken(ctx, v)
	}
	return app.Div().ID("settings").Class("settings").Role("form").Aria("label", "Access token").Body(
		app.Label().For("token-input").Text("Read token"),
		app.Input().ID("token-input").Type("password").Name("token").
			AutoComplete(false).Placeholder("paste the server's read token").
			Value(w.tokenInput).
			OnInput(func(ctx app.Context, e app.Event) {
				w.tokenInput = ctx.JSSrc().Get("value").String()
			}).
			OnKeyUp(func(ctx app.Context, e app.Event) {
				if e.Get("key").String() == "Enter" {
					save(ctx)
				}
			}),
		app.Button().ID("token-save").Class("btn").Type("button").
			OnClick(func(ctx app.Context, e app.Event) { save(ctx) }).
			Text("Save"),
	)
}
