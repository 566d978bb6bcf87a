package shared

import (
	"math"
	"testing"
	"time"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestComputePace(t *testing.T) {
	resets := at("2026-11-28T16:00:00Z") // session window 11:00–16:00
	for _, tc := range []struct {
		name         string
		meter        Meter
		now          time.Time
		wantOK       bool
		wantExpected float64
		wantDelta    float64
		wantRate     *float64
		wantRunsOut  *time.Time
		wantBand     string
	}{
		{name: "unknown window", meter: Meter{ID: "extra_thing", PercentUsed: 40, ResetsAt: &resets}, now: resets, wantOK: false},
		{name: "no resetsAt", meter: Meter{ID: MeterSession, PercentUsed: 40}, now: resets, wantOK: false},
		{name: "window start", meter: Meter{ID: MeterSession, PercentUsed: 0, ResetsAt: &resets}, now: at("2026-11-28T11:00:00Z"),
			wantOK: true, wantExpected: 0, wantDelta: 0, wantBand: BandOn},
		{name: "before the window clamps to its start", meter: Meter{ID: MeterSession, PercentUsed: 10, ResetsAt: &resets}, now: at("2026-11-28T10:00:00Z"),
			wantOK: true, wantExpected: 0, wantDelta: 10, wantBand: BandAhead},
		{name: "under 3 % of the window: no rate", meter: Meter{ID: MeterSession, PercentUsed: 10, ResetsAt: &resets}, now: at("2026-11-28T11:08:00Z"),
			wantOK: true, wantExpected: 8.0 / 300 * 100, wantDelta: 10 - 8.0/300*100, wantBand: BandAhead},
		{name: "exactly 3 % has a rate", meter: Meter{ID: MeterSession, PercentUsed: 3, ResetsAt: &resets}, now: at("2026-11-28T11:09:00Z"),
			wantOK: true, wantExpected: 3, wantDelta: 0, wantRate: ptr(20.0), wantRunsOut: ptr(at("2026-11-28T11:09:00Z").Add(4*time.Hour + 51*time.Minute)), wantBand: BandOn},
		{name: "even pace lasts", meter: Meter{ID: MeterSession, PercentUsed: 50, ResetsAt: &resets}, now: at("2026-11-28T13:30:00Z"),
			wantOK: true, wantExpected: 50, wantDelta: 0, wantRate: ptr(20.0), wantBand: BandOn},
		{name: "ahead runs out before reset", meter: Meter{ID: MeterSession, PercentUsed: 60, ResetsAt: &resets}, now: at("2026-11-28T13:00:00Z"),
			wantOK: true, wantExpected: 40, wantDelta: 20, wantRate: ptr(30.0), wantRunsOut: ptr(at("2026-11-28T14:20:00Z")), wantBand: BandAhead},
		{name: "under pace", meter: Meter{ID: MeterSession, PercentUsed: 32, ResetsAt: &resets}, now: at("2026-11-28T13:00:00Z"),
			wantOK: true, wantExpected: 40, wantDelta: -8, wantRate: ptr(16.0), wantBand: BandUnder},
		{name: "0 % used: no rate", meter: Meter{ID: MeterSession, PercentUsed: 0, ResetsAt: &resets}, now: at("2026-11-28T13:00:00Z"),
			wantOK: true, wantExpected: 40, wantDelta: -40, wantBand: BandUnder},
		{name: "100 % used has run out now", meter: Meter{ID: MeterSession, PercentUsed: 100, ResetsAt: &resets}, now: at("2026-11-28T13:00:00Z"),
			wantOK: true, wantExpected: 40, wantDelta: 60, wantRate: ptr(50.0), wantRunsOut: ptr(at("2026-11-28T13:00:00Z")), wantBand: BandAhead},
		{name: "window end", meter: Meter{ID: MeterSession, PercentUsed: 90, ResetsAt: &resets}, now: resets,
			wantOK: true, wantExpected: 100, wantDelta: -10, wantRate: ptr(18.0), wantBand: BandUnder},
		{name: "resetsAt in the past clamps to the end", meter: Meter{ID: MeterSession, PercentUsed: 100, ResetsAt: &resets}, now: resets.Add(2 * time.Hour),
			wantOK: true, wantExpected: 100, wantDelta: 0, wantRate: ptr(20.0), wantBand: BandOn},
		{name: "weekly window", meter: Meter{ID: MeterWeeklyOpus, PercentUsed: 50, ResetsAt: &resets}, now: resets.Add(-84 * time.Hour),
			wantOK: true, wantExpected: 50, wantDelta: 0, wantRate: ptr(50.0 / 84), wantBand: BandOn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := ComputePace(tc.meter, tc.now)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				return
			}
			length, _ := WindowLength(tc.meter.ID)
			if got, want := p.WindowStart, resets.Add(-length); !got.Equal(want) {
				t.Errorf("windowStart = %v, want %v", got, want)
			}
			if !near(p.ExpectedPercent, tc.wantExpected) {
				t.Errorf("expectedPercent = %v, want %v", p.ExpectedPercent, tc.wantExpected)
			}
			if !near(p.DeltaPercent, tc.wantDelta) {
				t.Errorf("deltaPercent = %v, want %v", p.DeltaPercent, tc.wantDelta)
			}
			switch {
			case (p.RatePerHour == nil) != (tc.wantRate == nil):
				t.Errorf("ratePerHour = %v, want %v", p.RatePerHour, tc.wantRate)
			case p.RatePerHour != nil && !near(*p.RatePerHour, *tc.wantRate):
				t.Errorf("ratePerHour = %v, want %v", *p.RatePerHour, *tc.wantRate)
			}
			switch {
			case (p.RunsOutAt == nil) != (tc.wantRunsOut == nil):
				t.Errorf("runsOutAt = %v, want %v", p.RunsOutAt, tc.wantRunsOut)
			case p.RunsOutAt != nil && p.RunsOutAt.Sub(*tc.wantRunsOut).Abs() > time.Second:
				t.Errorf("runsOutAt = %v, want %v", *p.RunsOutAt, *tc.wantRunsOut)
			}
			if got, want := p.WillLast, tc.wantRunsOut == nil; got != want {
				t.Errorf("willLast = %v, want %v", got, want)
			}
			if got, want := p.Band, tc.wantBand; got != want {
				t.Errorf("band = %q, want %q", got, want)
			}
		})
	}
}

func TestWithPaceLeavesInputAlone(t *testing.T) {
	resets := at("2026-11-28T16:00:00Z")
	in := []Meter{{ID: MeterSession, PercentUsed: 60, ResetsAt: &resets}, {ID: "other", PercentUsed: 1}}
	out := WithPace(in, at("2026-11-28T13:00:00Z"))
	if in[0].Pace != nil {
		t.Fatal("input meter was changed")
	}
	if out[0].Pace == nil || out[0].Pace.Band != BandAhead {
		t.Fatalf("session pace = %+v", out[0].Pace)
	}
	if out[1].Pace != nil {
		t.Fatalf("unknown window got a pace: %+v", out[1].Pace)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
