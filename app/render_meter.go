package app

import (
	"strings"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/claude-usage/widget/shared"
)

const svgNS = "http://www.w3.org/2000/svg"

// el is an element from its tag, its attributes as name-value pairs and
// its children. SVG tags (svgTags) get the SVG namespace: go-app then
// creates them with createElementNS, which is what makes the browser
// draw them.
func el(tag string, attrs []string, body ...app.UI) app.HTMLElem {
	e := app.Elem(tag)
	if svgTags[tag] {
		e = e.XMLNS(svgNS)
	}
	for i := 0; i+1 < len(attrs); i += 2 {
		e = e.Attr(attrs[i], attrs[i+1])
	}
	if len(body) > 0 {
		e = e.Body(body...)
	}
	return e
}

var svgTags = map[string]bool{"svg": true, "title": true, "desc": true, "line": true, "path": true, "text": true}

// line is an SVG line of class cls.
func line(cls string, x1, y1, x2, y2 float64) app.UI {
	return el("line", []string{"class", cls, "x1", Coord(x1), "y1", Coord(y1), "x2", Coord(x2), "y2", Coord(y2)})
}

// Sparkline viewBox: wide and flat, stretched to the card's width.
const (
	sparkW = 120
	sparkH = 28
)

func (w *Widget) location() *time.Location {
	if w.deps != nil && w.deps.Location != nil {
		return w.deps.Location
	}
	return time.Local
}

func (w *Widget) renderMeters(data *shared.UsageResponse) app.UI {
	if data == nil {
		return app.Section().ID("meters").Class("meters").Aria("label", "Usage limits")
	}
	now := w.now
	loc := w.location()
	extra := ExtraUsageText(data.ExtraUsage)
	age := time.Duration(data.AgeSeconds)*time.Second + now.Sub(w.receivedAt)
	live := ""
	if w.live.open {
		live = " · live"
	}
	return app.Section().ID("meters").Class("meters").Aria("label", "Usage limits").Body(
		app.P().ID("updated").Class("updated").Body(
			app.Span().ID("updated-age").Text(UpdatedText(age)),
			app.Text(" · "),
			app.Span().ID("source").Text(SourceText(data.Capture)),
			app.Span().ID("live").Text(live),
		),
		app.Ul().Class("meter-list").Body(
			app.Range(data.Meters).Slice(func(i int) app.UI {
				return w.renderMeter(data.Meters[i], data.ScrapedAt, now, loc)
			}),
		),
		app.If(extra != "", func() app.UI {
			return app.P().ID("extra-usage").Class("extra").Text(extra)
		}),
	)
}

func (w *Widget) renderMeter(m shared.Meter, scrapedAt, now time.Time, loc *time.Location) app.UI {
	pct := m.PercentUsed
	width := max(0, min(pct, 100))
	label := shared.CleanText(m.Label)
	pace, hasPace := MeterPace(m, scrapedAt)
	id := m.ID
	bar := []app.UI{app.Div().Class("meter-fill").Style("width", FormatPercentWidth(width))}
	valueText := PercentText(pct) + " used"
	var paceLine app.UI
	if hasPace {
		band := BandText(pace)
		valueText += ", " + band
		bar = append(bar, app.Div().Class("pace-tick").Aria("hidden", "true").
			Title("Even pace: "+PercentText(pace.ExpectedPercent)).
			Style("left", FormatPercentWidth(max(0, min(pace.ExpectedPercent, 100)))))
		proj, countdown := ProjectionText(pace, m.ResetsAt, now, loc)
		paceLine = app.P().Class("meter-pace").Body(
			app.Span().Class("pace-band band-"+pace.Band).Text(band),
			app.If(proj != "", func() app.UI {
				return app.Span().Class("projection").Body(
					app.Text(" · "+proj),
					app.If(countdown != "", func() app.UI {
						return app.Span().Class("countdown").Text(" (" + countdown + ")")
					}),
				)
			}),
		)
	}
	return app.Li().Class("meter").DataSet("meter", id).
		OnClick(func(ctx app.Context, e app.Event) { w.openHistory(ctx, id) }).
		Body(
			app.Div().Class("meter-head").Body(
				// CleanText again here: data cached from, or served by,
				// an older server was never checked for bidi overrides.
				app.Span().Class("meter-label").ID("label-"+id).Text(label),
				app.Span().Class("meter-percent").Text(PercentText(pct)+" used"),
			),
			app.Div().Class("meter-bar "+Level(pct)).Role("progressbar").
				Aria("labelledby", "label-"+id).
				Aria("valuemin", 0).Aria("valuemax", 100).Aria("valuenow", strings.TrimSuffix(PercentText(pct), "%")).
				Aria("valuetext", valueText).
				Body(bar...),
			app.If(paceLine != nil, func() app.UI { return paceLine }),
			app.P().Class("meter-reset").Text(shared.CleanText(ResetLine(m.ResetsAt, m.ResetsText, now, loc))),
			// A real button, so the history is reachable by keyboard; its
			// click bubbles to the card's handler.
			app.Button().ID("open-"+id).Class("spark-btn").Type("button").
				Aria("label", "Show the history of "+label).
				Body(w.renderSpark(m, label, scrapedAt, pace, hasPace)),
		)
}

// renderSpark is the current window's sparkline with the even-pace line,
// or the word "History" before its series came.
func (w *Widget) renderSpark(m shared.Meter, label string, scrapedAt time.Time, pace shared.Pace, hasPace bool) app.UI {
	var s *spark
	var pts []shared.SeriesPoint
	if hasPace {
		s, pts = w.sparkOf(m, scrapedAt)
	}
	if s == nil || len(pts) == 0 {
		return app.Span().Class("spark-text").Text("History ›")
	}
	p := Plot{Since: s.since, Until: s.until, Width: sparkW, Height: sparkH, Top: 1, Bottom: 1}
	peak := 0.0
	for _, pt := range pts {
		peak = max(peak, pt.PercentUsed)
	}
	desc := label + " this window: " + PercentText(m.PercentUsed) + " now, highest " + PercentText(peak) +
		", even pace " + PercentText(pace.ExpectedPercent)
	return el("svg", []string{"class", "spark", "viewBox", "0 0 120 28", "preserveAspectRatio", "none",
		"role", "img", "aria-label", desc, "focusable", "false"},
		el("title", nil, app.Text(desc)),
		line("spark-pace", p.X(s.since), p.Y(0), p.X(s.until), p.Y(100)),
		el("path", []string{"class", "spark-area", "d", p.AreaPath(pts)}),
		el("path", []string{"class", "spark-line", "d", p.LinePath(pts)}),
	)
}

// ResetLine is ResetText with the other half beside it: the clock time
// when the text counts down, the countdown when it names a day.
func ResetLine(resetsAt *time.Time, fallback string, now time.Time, loc *time.Location) string {
	text := ResetText(resetsAt, fallback, now, loc)
	if resetsAt == nil || resetsAt.IsZero() || !resetsAt.After(now) {
		return text
	}
	if loc == nil {
		loc = time.Local
	}
	if d := resetsAt.Sub(now); d < 24*time.Hour {
		return text + " (" + ClockText(resetsAt.In(loc), now.In(loc)) + ")"
	} else {
		return text + " (in " + DurationText(d) + ")"
	}
}
