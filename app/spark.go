package app

import (
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/claude-usage/widget/app/client"
	"github.com/claude-usage/widget/shared"
)

// SparkBuckets is how many buckets a sparkline has over its window.
const SparkBuckets = 60

// sparkRetry is how long a failed series request waits before the next
// data asks again.
const sparkRetry = 5 * time.Minute

// spark is the current window's series of one meter.
type spark struct {
	since, until time.Time // the window
	server       []shared.SeriesPoint
	loaded       bool
	loading      bool
	failedAt     time.Time
}

// updateSparks asks for the series of every meter whose window is new to
// the widget; the rest only take the latest reading (SparkPoints).
func (w *Widget) updateSparks() {
	if w.data == nil || !w.started {
		return
	}
	if w.sparks == nil {
		w.sparks = map[string]*spark{}
	}
	for _, m := range w.data.Meters {
		p, ok := MeterPace(m, w.data.ScrapedAt)
		if !ok {
			continue
		}
		s := w.sparks[m.ID]
		if s == nil || !s.since.Equal(p.WindowStart) {
			s = &spark{since: p.WindowStart, until: m.ResetsAt.UTC()}
			w.sparks[m.ID] = s
		}
		if s.loaded || s.loading || (!s.failedAt.IsZero() && w.now.Sub(s.failedAt) < sparkRetry) {
			continue
		}
		w.loadSpark(m.ID, s)
	}
}

func (w *Widget) loadSpark(id string, s *spark) {
	s.loading = true
	ctx := w.ctx
	req := client.SeriesRequest{Account: w.account, Meter: id, Token: w.token, Since: s.since, Points: SparkBuckets}
	f := w.deps.Fetcher
	run := w.runCtx
	ctx.Async(func() {
		res, err := f.Series(run, req)
		ctx.Dispatch(func(ctx app.Context) {
			s.loading = false
			if err != nil {
				s.failedAt = time.Now()
				w.log().Warn("sparkline series", "meter", id, "error", err.Error())
				return
			}
			s.server, s.loaded = res.Points, true
		})
	})
}

// sparkOf is what the sparkline of m draws, nil before its series came.
func (w *Widget) sparkOf(m shared.Meter, scrapedAt time.Time) (*spark, []shared.SeriesPoint) {
	s := w.sparks[m.ID]
	if s == nil || !s.loaded {
		return nil, nil
	}
	return s, SparkPoints(s.server, shared.SeriesPoint{At: scrapedAt, PercentUsed: m.PercentUsed}, s.since, s.until, SparkBuckets)
}
