package app

import (
	"strings"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/claude-usage/widget/app/client"
	"github.com/claude-usage/widget/shared"
)

// HistoryRange is one span the history view offers.
type HistoryRange struct {
	Label string
	Span  time.Duration
}

// HistoryRanges are the history view's spans.
var HistoryRanges = []HistoryRange{
	{"24 h", 24 * time.Hour},
	{"7 d", 7 * 24 * time.Hour},
	{"30 d", 30 * 24 * time.Hour},
	{"90 d", 90 * 24 * time.Hour},
}

// HistoryPoints is how many buckets the history chart asks for.
const HistoryPoints = 240

// HistoryWindows is how many past windows the table lists.
const HistoryWindows = 20

// historyState is the open history view of one meter.
type historyState struct {
	meter     string
	rng       int
	gen       int
	loading   bool
	err       string
	since     time.Time
	until     time.Time
	series    []shared.SeriesPoint
	windows   []shared.Window
	windowsOK bool
}

// openHistory shows the history of a meter (a tap or Enter on it); the
// session opens on a day, the weekly limits on a week.
func (w *Widget) openHistory(ctx app.Context, id string) {
	if w.hist != nil && w.hist.meter == id {
		return
	}
	rng := 1
	if id == shared.MeterSession {
		rng = 0
	}
	w.hist = &historyState{meter: id, rng: rng}
	w.loadHistory()
	ctx.Defer(func(app.Context) { focusByID("history-close") })
}

// closeHistory returns to the meters, focus on the meter it came from.
func (w *Widget) closeHistory(ctx app.Context) {
	if w.hist == nil {
		return
	}
	id := w.hist.meter
	w.hist = nil
	ctx.Defer(func(app.Context) { focusByID("open-" + id) })
}

func (w *Widget) setHistoryRange(i int) {
	if w.hist == nil || i < 0 || i >= len(HistoryRanges) || i == w.hist.rng {
		return
	}
	w.hist.rng = i
	w.loadHistory()
}

// loadHistory asks for the series of the chosen span and the past
// windows; the span ends at the whole minute so a reload asks the same.
func (w *Widget) loadHistory() {
	h := w.hist
	if h == nil || !w.started {
		return
	}
	h.gen++
	gen := h.gen
	h.loading, h.err = true, ""
	now := time.Now().UTC()
	h.until = now.Truncate(time.Minute).Add(time.Minute)
	h.since = h.until.Add(-HistoryRanges[h.rng].Span)
	sreq := client.SeriesRequest{Account: w.account, Meter: h.meter, Token: w.token, Since: h.since, Until: h.until, Points: HistoryPoints}
	wreq := client.WindowsRequest{Account: w.account, Meter: h.meter, Token: w.token, Limit: HistoryWindows}
	needWindows := !h.windowsOK
	f, ctx, run := w.deps.Fetcher, w.ctx, w.runCtx
	ctx.Async(func() {
		series, serr := f.Series(run, sreq)
		var windows *shared.WindowsResponse
		var werr error
		if needWindows {
			windows, werr = f.Windows(run, wreq)
		}
		ctx.Dispatch(func(ctx app.Context) {
			if w.hist != h || h.gen != gen {
				return
			}
			h.loading = false
			var errs []string
			if serr != nil {
				errs = append(errs, "the chart")
				w.log().Warn("history series", "meter", h.meter, "error", serr.Error())
			} else {
				h.series = series.Points
			}
			if werr != nil {
				errs = append(errs, "the past windows")
				w.log().Warn("history windows", "meter", h.meter, "error", werr.Error())
			} else if windows != nil {
				h.windows, h.windowsOK = windows.Windows, true
			}
			if len(errs) > 0 {
				h.err = "Could not load " + strings.Join(errs, " and ") + " — try again later."
			}
		})
	})
}

func focusByID(id string) {
	if el := app.Window().GetElementByID(id); el.Truthy() {
		el.Call("focus")
	}
}
