package app

import (
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

func TestPlotGeometry(t *testing.T) {
	since := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	p := Plot{Since: since, Until: since.Add(10 * time.Hour), Width: 120, Height: 28, Left: 10, Right: 10, Top: 4, Bottom: 4}
	pt := func(h float64, pct float64) shared.SeriesPoint {
		return shared.SeriesPoint{At: since.Add(time.Duration(h * float64(time.Hour))), PercentUsed: pct}
	}
	tests := []struct {
		name string
		pts  []shared.SeriesPoint
		line string
		area string
	}{
		{"none", nil, "", ""},
		{"one point is a short flat line", []shared.SeriesPoint{pt(5, 50)}, "M60,14h2", "M60,14h2L62,24L60,24Z"},
		{"start, middle, end", []shared.SeriesPoint{pt(0, 0), pt(5, 50), pt(10, 100)}, "M10,24L60,14L110,4", "M10,24L60,14L110,4L110,24L10,24Z"},
		{"clamped to the span and 0–100", []shared.SeriesPoint{pt(-1, -5), pt(11, 140)}, "M10,24L110,4", "M10,24L110,4L110,24L10,24Z"},
		{"one decimal", []shared.SeriesPoint{pt(1.0/3, 33.33)}, "M13.3,17.3h2", "M13.3,17.3h2L15.3,24L13.3,24Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := p.LinePath(tt.pts), tt.line; got != want {
				t.Errorf("LinePath = %q, want %q", got, want)
			}
			if got, want := p.AreaPath(tt.pts), tt.area; got != want {
				t.Errorf("AreaPath = %q, want %q", got, want)
			}
		})
	}
	if got, want := Coord(p.Y(100)), "4"; got != want {
		t.Errorf("Y(100) = %s, want %s (the limit line at the top of the plot)", got, want)
	}
	empty := Plot{Since: since, Until: since, Width: 100, Left: 5}
	if got, want := empty.X(since.Add(time.Hour)), 5.0; got != want {
		t.Errorf("X on an empty span = %v, want %v", got, want)
	}
}

func TestPlotBoundaries(t *testing.T) {
	since := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	p := Plot{Since: since, Until: since.Add(24 * time.Hour), Width: 100}
	h := func(n int) time.Time { return since.Add(time.Duration(n) * time.Hour) }
	windows := []shared.Window{
		{Start: h(15), ResetsAt: h(20)}, // newest first, as the server answers
		{Start: h(10), ResetsAt: h(15)}, // shares an edge with the one above
		{Start: h(-3), ResetsAt: h(2)},  // starts before the span
	}
	cur := &shared.Pace{WindowStart: h(21)}
	got := p.Boundaries(windows, cur)
	want := []time.Time{h(2), h(10), h(15), h(20), h(21)}
	if len(got) != len(want) {
		t.Fatalf("boundaries = %v, want %v", got, want)
	}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Errorf("boundary %d = %v, want %v", i, got[i], want[i])
		}
	}
}

// The sparkline takes the server's buckets and the newest reading through
// shared.Bucket, the rule the server uses: the newest value lands in its
// bucket at once, the highest per bucket wins.
func TestSparkPoints(t *testing.T) {
	since := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	until := since.Add(5 * time.Hour)
	server := []shared.SeriesPoint{{At: since, PercentUsed: 10}, {At: since.Add(time.Hour), PercentUsed: 30}}
	tests := []struct {
		name   string
		latest shared.SeriesPoint
		want   []shared.SeriesPoint
	}{
		{"no latest", shared.SeriesPoint{}, server},
		{"a new bucket", shared.SeriesPoint{At: since.Add(2*time.Hour + time.Minute), PercentUsed: 35},
			append(server[:2:2], shared.SeriesPoint{At: since.Add(2 * time.Hour), PercentUsed: 35})},
		{"a lower value in a known bucket keeps the peak", shared.SeriesPoint{At: since.Add(time.Hour + time.Minute), PercentUsed: 20}, server},
		{"outside the window", shared.SeriesPoint{At: until, PercentUsed: 99}, server},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SparkPoints(server, tt.latest, since, until, 5)
			if len(got) != len(tt.want) {
				t.Fatalf("points = %v, want %v", got, tt.want)
			}
			for i := range got {
				if !got[i].At.Equal(tt.want[i].At) || got[i].PercentUsed != tt.want[i].PercentUsed {
					t.Errorf("point %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}
