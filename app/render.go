package app

import (
	"strings"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/claude-usage/widget/shared"
)

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
			app.If(data != nil && len(data.Drift) > 0, func() app.UI {
				return app.P().ID("drift").Class("note note-drift").Text(shared.DriftText)
			}),
			app.If(data != nil && data.Partial, func() app.UI {
				return app.P().ID("partial").Class("note note-partial").Text(TextPartial)
			}),
			app.If(data != nil && ScraperProblemText(data.Scraper) != "", func() app.UI {
				return app.P().ID("scraper-problem").Class("note note-scraper").Body(richText(ScraperProblemText(data.Scraper))...)
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
		w.renderHistory(data),
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
		app.If(w.token != "", func() app.UI {
			return app.Button().ID("token-remove").Class("btn").Type("button").
				Title("Remove the token and the data kept in this browser").
				OnClick(func(ctx app.Context, e app.Event) { w.forgetToken(ctx) }).
				Text("Remove token")
		}),
		&Notifications{Token: w.token}, // notify.go
	)
}

// richText renders a next step whose commands are set in backticks (the
// scraper's log style) with each command as <code> and no backtick shown.
func richText(s string) []app.UI {
	var out []app.UI
	for i, part := range SplitCode(s) {
		if part == "" {
			continue
		}
		if i%2 == 1 {
			out = append(out, app.Code().Text(part))
		} else {
			out = append(out, app.Text(part))
		}
	}
	return out
}
