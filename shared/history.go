package shared

import "time"

// Paths of the history, windows and live-update endpoints.
const (
	PathWindows = "/api/claude/console-usage/windows"
	PathStream  = "/api/claude/console-usage/stream"
)

// Limits of the series and windows queries.
const (
	DefaultSeriesPoints = 500
	MaxSeriesPoints     = 2000
	DefaultWindows      = 50
	MaxWindows          = 500
	// StreamEvent is the SSE event name whose data is a GET latest body.
	StreamEvent = "usage"
	// StreamRetryMillis is the reconnect delay the stream tells clients.
	StreamRetryMillis = 5000
	// StreamPing is how often an idle stream sends a comment.
	StreamPing = 25 * time.Second
)

// SeriesPoint is one bucket of a meter's series: the highest percentUsed
// seen in [At, At+step).
type SeriesPoint struct {
	At          time.Time `json:"at"`
	PercentUsed float64   `json:"percentUsed"`
}

// SeriesResponse is GET …/history with meter=: at most points buckets of
// stepSeconds each between since and until, empty buckets left out.
type SeriesResponse struct {
	Account     string        `json:"account"`
	Meter       string        `json:"meter"`
	Since       time.Time     `json:"since"`
	Until       time.Time     `json:"until"`
	StepSeconds int64         `json:"step"`
	Points      []SeriesPoint `json:"points"`
}

// Window is one finished window of a meter.
type Window struct {
	Meter        string    `json:"meter"`
	Start        time.Time `json:"start"`
	ResetsAt     time.Time `json:"resetsAt"`
	PeakPercent  float64   `json:"peakPercent"`
	FinalPercent float64   `json:"finalPercent"`
	HitLimit     bool      `json:"hitLimit"` // PeakPercent >= 100
	Samples      int       `json:"samples"`
}

// WindowsResponse is GET …/windows: past windows, newest first.
type WindowsResponse struct {
	Account string   `json:"account"`
	Meter   string   `json:"meter"`
	Windows []Window `json:"windows"`
}

// Bucket reduces samples (any order) to at most n buckets of equal width
// between since and until, each holding its highest value, oldest first;
// samples outside [since, until) and empty buckets are left out. The server
// uses it for …/history and the widget for its sparklines, so both draw the
// same shape.
func Bucket(samples []SeriesPoint, since, until time.Time, n int) (step time.Duration, out []SeriesPoint) {
	span := until.Sub(since)
	if n < 1 || span <= 0 {
		return 0, nil
	}
	step = (span + time.Duration(n) - 1) / time.Duration(n) // ceil, so n buckets cover the span
	if step <= 0 {
		step = 1
	}
	best := make(map[int]float64)
	for _, s := range samples {
		if s.At.Before(since) || !s.At.Before(until) {
			continue
		}
		i := int(s.At.Sub(since) / step)
		if v, ok := best[i]; !ok || s.PercentUsed > v {
			best[i] = s.PercentUsed
		}
	}
	for i := 0; i < n; i++ {
		if v, ok := best[i]; ok {
			out = append(out, SeriesPoint{At: since.Add(time.Duration(i) * step).UTC(), PercentUsed: v})
		}
	}
	return step, out
}
