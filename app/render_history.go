package app

import (
	"strconv"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/claude-usage/widget/shared"
)

// HistoryChart is the history chart's viewBox and margins (room for the percent labels on the
// left and the times below). 320 units wide: at a 320 px phone the text
// stays at about its nominal size.
var HistoryChart = Plot{Width: 320, Height: 180, Left: 34, Right: 8, Top: 8, Bottom: 22}

// TextHistoryLoading is shown while the history view waits for its data.
const TextHistoryLoading = "Loading the history…"

func (w *Widget) renderHistory(data *shared.UsageResponse) app.UI {
	h := w.hist
	if h == nil || data == nil {
		return app.Section().ID("history").Hidden(true)
	}
	label := h.meter
	var pace *shared.Pace
	for _, m := range data.Meters {
		if m.ID == h.meter {
			label = shared.CleanText(m.Label)
			if p, ok := MeterPace(m, data.ScrapedAt); ok {
				pace = &p
			}
		}
	}
	loc := w.location()
	status := ""
	switch {
	case h.loading:
		status = TextHistoryLoading
	case h.err != "":
		status = h.err
	}
	return app.Section().ID("history").Class("history").Aria("labelledby", "history-title").
		OnKeyDown(func(ctx app.Context, e app.Event) {
			if e.Get("key").String() == "Escape" {
				w.closeHistory(ctx)
			}
		}).
		Body(
			app.Div().Class("history-head").Body(
				el("h2", []string{"id", "history-title"}, app.Text(label+" — history")),
				app.Button().ID("history-close").Class("btn").Type("button").
					Aria("label", "Close the history").
					OnClick(func(ctx app.Context, e app.Event) { w.closeHistory(ctx) }).
					Text("Close"),
			),
			app.Div().Class("ranges").Role("group").Aria("label", "Span").Body(
				app.Range(HistoryRanges).Slice(func(i int) app.UI {
					return app.Button().ID("range-"+strconv.Itoa(i)).Class("btn range").Type("button").
						Aria("pressed", i == h.rng).
						OnClick(func(ctx app.Context, e app.Event) { w.setHistoryRange(i) }).
						Text(HistoryRanges[i].Label)
				}),
			),
			app.P().ID("history-status").Class("hint").Aria("live", "polite").Text(status),
			w.renderChart(h, label, pace, loc),
			renderWindows(h, label, loc),
		)
}

func (w *Widget) renderChart(h *historyState, label string, pace *shared.Pace, loc *time.Location) app.UI {
	p := HistoryChart
	p.Since, p.Until = h.since, h.until
	now := w.now.In(loc)
	right := p.Width - p.Right
	parts := []app.UI{
		el("title", []string{"id", "chart-title"}, app.Text(label+", last "+HistoryRanges[h.rng].Label)),
		el("desc", []string{"id", "chart-desc"}, app.Text(ChartSummary(h.series, h.windows, p, loc))),
	}
	for _, v := range []float64{0, 50, 100} {
		cls := "grid"
		if v == 100 {
			cls = "limit" // the limit line
		}
		parts = append(parts, line(cls, p.Left, p.Y(v), right, p.Y(v)),
			el("text", []string{"class", "axis", "x", Coord(p.Left - 4), "y", Coord(p.Y(v) + 4), "text-anchor", "end"},
				app.Text(PercentText(v))))
	}
	for _, t := range p.Boundaries(h.windows, pace) {
		parts = append(parts, line("boundary", p.X(t), p.Y(100), p.X(t), p.Y(0)))
	}
	bottom := Coord(p.Height - 6)
	parts = append(parts,
		el("text", []string{"class", "axis", "x", Coord(p.Left), "y", bottom}, app.Text(ClockText(h.since.In(loc), now))),
		el("text", []string{"class", "axis", "x", Coord(right), "y", bottom, "text-anchor", "end"}, app.Text("now")),
	)
	if d := p.LinePath(h.series); d != "" {
		parts = append(parts, el("path", []string{"id", "history-line", "class", "history-line", "d", d}))
	}
	return el("svg", []string{"id", "history-chart", "class", "chart", "viewBox", "0 0 " + Coord(p.Width) + " " + Coord(p.Height),
		"role", "img", "aria-labelledby", "chart-title chart-desc",
		"data-since", h.since.UTC().Format(time.RFC3339), "data-until", h.until.UTC().Format(time.RFC3339),
		"data-points", strconv.Itoa(len(h.series))}, parts...)
}

// ChartSummary is the chart in words for screen readers: the highest
// point and when, the latest, and how many windows in the span hit the
// limit.
func ChartSummary(series []shared.SeriesPoint, windows []shared.Window, p Plot, loc *time.Location) string {
	if len(series) == 0 {
		return "No data in this span."
	}
	peak := series[0]
	for _, pt := range series {
		if pt.PercentUsed > peak.PercentUsed {
			peak = pt
		}
	}
	s := "Highest " + PercentText(peak.PercentUsed) + " on " + peak.At.In(loc).Format("Mon 2 Jan 15:04") +
		"; latest " + PercentText(series[len(series)-1].PercentUsed) + "."
	n, hit := 0, 0
	for _, w := range windows {
		if p.Contains(w.ResetsAt) {
			n++
			if w.HitLimit {
				hit++
			}
		}
	}
	if n > 0 {
		s += " " + strconv.Itoa(hit) + " of " + strconv.Itoa(n) + " past windows in this span hit the limit."
	}
	return s
}

func renderWindows(h *historyState, label string, loc *time.Location) app.UI {
	if !h.windowsOK {
		return app.Div().ID("windows").Hidden(true)
	}
	if len(h.windows) == 0 {
		return app.P().ID("windows").Class("hint").Text("No finished window yet.")
	}
	const layout = "Mon 2 Jan 15:04"
	rows := make([]app.UI, len(h.windows))
	for i, win := range h.windows {
		hit, cls := "not hit", "hit-no"
		if win.HitLimit {
			hit, cls = "hit", "hit-yes"
		}
		rows[i] = el("tr", []string{"class", "window"},
			el("td", nil, app.Text(win.Start.In(loc).Format(layout)+" – "+win.ResetsAt.In(loc).Format(layout))),
			el("td", []string{"class", "num"}, app.Text(PercentText(win.PeakPercent))),
			el("td", []string{"class", cls}, app.Text(hit)))
	}
	th := func(s string) app.UI { return el("th", []string{"scope", "col"}, app.Text(s)) }
	return app.Div().ID("windows").Class("table-wrap").Body(
		el("table", []string{"class", "windows"},
			el("caption", nil, app.Text("Past windows of "+label)),
			el("thead", nil, el("tr", nil, th("Window"), th("Peak"), th("Limit"))),
			el("tbody", nil, rows...),
		),
	)
}
