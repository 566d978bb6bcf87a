package shared

import (
	"math"
	"time"
)

// Window lengths by meter id: the 5-hour session and the weekly limits.
// Other meters have no known window, hence no pace.
const (
	SessionWindow = 5 * time.Hour
	WeeklyWindow  = 7 * 24 * time.Hour
)

// Pace bands.
const (
	BandOn    = "on"    // within 5 points of an even pace
	BandAhead = "ahead" // more than 5 points above it
	BandUnder = "under" // more than 5 points below it
)

// PaceBandPoints is how far from an even pace still counts as on pace.
const PaceBandPoints = 5

// paceMinElapsed is the share of the window before which a rate would be
// noise (one scrape a minute into a session would project wildly).
const paceMinElapsed = 0.03

// Pace says where a meter stands against an even use of its window.
type Pace struct {
	WindowStart     time.Time `json:"windowStart"`
	ExpectedPercent float64   `json:"expectedPercent"`
	DeltaPercent    float64   `json:"deltaPercent"`
	// RatePerHour is nil while less than 3 % of the window has passed or
	// nothing has been used: there is no rate worth projecting.
	RatePerHour *float64 `json:"ratePerHour"`
	// RunsOutAt is when 100 % is reached at RatePerHour, nil when that is
	// not before the reset.
	RunsOutAt *time.Time `json:"runsOutAt"`
	WillLast  bool       `json:"willLast"`
	Band      string     `json:"band"`
}

// WindowLength is the length of the meter's window, false when unknown.
func WindowLength(meterID string) (time.Duration, bool) {
	switch {
	case meterID == MeterSession:
		return SessionWindow, true
	case len(meterID) > len("weekly_") && meterID[:len("weekly_")] == "weekly_":
		return WeeklyWindow, true
	}
	return 0, false
}

// ComputePace is the one pace rule the server and the widget share. now is
// the moment percentUsed was true (the server passes scrapedAt, so a
// version always gives the same pace). It returns false for a meter without
// a known window or without resetsAt.
func ComputePace(m Meter, now time.Time) (Pace, bool) {
	length, ok := WindowLength(m.ID)
	if !ok || m.ResetsAt == nil {
		return Pace{}, false
	}
	resets := m.ResetsAt.UTC()
	start := resets.Add(-length)
	elapsed := now.Sub(start)
	elapsed = max(0, min(elapsed, length))
	p := Pace{WindowStart: start}
	p.ExpectedPercent = float64(elapsed) / float64(length) * 100
	p.DeltaPercent = m.PercentUsed - p.ExpectedPercent
	switch {
	case p.DeltaPercent > PaceBandPoints:
		p.Band = BandAhead
	case p.DeltaPercent < -PaceBandPoints:
		p.Band = BandUnder
	default:
		p.Band = BandOn
	}
	if float64(elapsed) >= paceMinElapsed*float64(length) && m.PercentUsed > 0 {
		rate := m.PercentUsed / elapsed.Hours()
		p.RatePerHour = &rate
		hoursLeft := (100 - m.PercentUsed) / rate
		if hoursLeft < 0 {
			hoursLeft = 0
		}
		// Guard the conversion: a tiny rate gives a wait beyond what a
		// Duration holds, which certainly lasts past the reset.
		if hoursLeft*float64(time.Hour) < float64(math.MaxInt64/2) {
			at := now.Add(time.Duration(hoursLeft * float64(time.Hour))).UTC()
			if at.Before(resets) {
				p.RunsOutAt = &at
			}
		}
	}
	p.WillLast = p.RunsOutAt == nil
	return p, true
}

// WithPace returns the meters with Pace set for each known window, as GET
// latest answers them; the input is not changed.
func WithPace(meters []Meter, now time.Time) []Meter {
	out := make([]Meter, len(meters))
	for i, m := range meters {
		if p, ok := ComputePace(m, now); ok {
			m.Pace = &p
		}
		out[i] = m
	}
	return out
}
