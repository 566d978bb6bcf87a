package app

import (
	"strconv"
	"time"

	"github.com/claude-usage/widget/shared"
)

// Plot maps a time span and 0–100 % onto an SVG viewBox: the plot area is
// the box less its margins (room for the axis labels). Pure, so the
// geometry is table-tested on the host and the e2e suite can check the
// drawn points against the API's.
type Plot struct {
	Since, Until             time.Time
	Width, Height            float64 // the viewBox
	Left, Right, Top, Bottom float64 // margins
}

// X is t's horizontal position, clamped to the plot area.
func (p Plot) X(t time.Time) float64 {
	span := p.Until.Sub(p.Since)
	w := p.Width - p.Left - p.Right
	if span <= 0 {
		return p.Left
	}
	f := float64(t.Sub(p.Since)) / float64(span)
	f = max(0, min(f, 1))
	return p.Left + f*w
}

// Y is a percentage's vertical position (100 % at the top of the plot
// area), clamped to 0–100.
func (p Plot) Y(percent float64) float64 {
	h := p.Height - p.Top - p.Bottom
	percent = max(0, min(percent, 100))
	return p.Top + (1-percent/100)*h
}

// Contains says whether t falls in the span.
func (p Plot) Contains(t time.Time) bool { return !t.Before(p.Since) && !t.After(p.Until) }

// LinePath is the SVG path through the points in order: "M x,y L x,y …",
// one decimal; "" without points. A single point becomes a short flat
// line so that it shows.
func (p Plot) LinePath(pts []shared.SeriesPoint) string {
	if len(pts) == 0 {
		return ""
	}
	b := make([]byte, 0, len(pts)*14)
	for i, pt := range pts {
		if i == 0 {
			b = append(b, 'M')
		} else {
			b = append(b, 'L')
		}
		b = appendXY(b, p.X(pt.At), p.Y(pt.PercentUsed))
	}
	if len(pts) == 1 {
		b = append(b, 'h', '2')
	}
	return string(b)
}

// AreaPath closes LinePath down to 0 % for a filled sparkline.
func (p Plot) AreaPath(pts []shared.SeriesPoint) string {
	if len(pts) == 0 {
		return ""
	}
	line := p.LinePath(pts)
	last := p.X(pts[len(pts)-1].At)
	if len(pts) == 1 {
		last += 2
	}
	b := []byte(line)
	b = append(b, 'L')
	b = appendXY(b, last, p.Y(0))
	b = append(b, 'L')
	b = appendXY(b, p.X(pts[0].At), p.Y(0))
	b = append(b, 'Z')
	return string(b)
}

func appendXY(b []byte, x, y float64) []byte {
	b = strconv.AppendFloat(b, round1(x), 'f', -1, 64)
	b = append(b, ',')
	return strconv.AppendFloat(b, round1(y), 'f', -1, 64)
}

// round1 rounds to one decimal, enough for a few hundred units of
// viewBox and a quarter of the bytes of full precision.
func round1(v float64) float64 {
	if v < 0 {
		return -float64(int64(-v*10+0.5)) / 10
	}
	return float64(int64(v*10+0.5)) / 10
}

// Coord formats a coordinate as LinePath does, for attributes.
func Coord(v float64) string { return strconv.FormatFloat(round1(v), 'f', -1, 64) }

// Boundaries are the window edges (starts and resets) inside the plot's
// span, each once, oldest first.
func (p Plot) Boundaries(windows []shared.Window, current *shared.Pace) []time.Time {
	seen := map[int64]bool{}
	var out []time.Time
	add := func(t time.Time) {
		if t.IsZero() || !p.Contains(t) || seen[t.Unix()] {
			return
		}
		seen[t.Unix()] = true
		out = append(out, t)
	}
	for _, w := range windows {
		add(w.Start)
		add(w.ResetsAt)
	}
	if current != nil {
		add(current.WindowStart)
	}
	// Insertion sort: a few dozen at most.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Before(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// SparkPoints is the series of the current window as the sparkline draws
// it: the server's buckets plus the latest reading, bucketed again by the
// shared rule (highest per bucket) so the newest value shows at once.
func SparkPoints(server []shared.SeriesPoint, latest shared.SeriesPoint, since, until time.Time, n int) []shared.SeriesPoint {
	all := make([]shared.SeriesPoint, 0, len(server)+1)
	all = append(all, server...)
	if !latest.At.IsZero() {
		all = append(all, latest)
	}
	_, out := shared.Bucket(all, since, until, n)
	return out
}
