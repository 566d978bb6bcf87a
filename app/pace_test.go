package app

import (
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

func TestBandText(t *testing.T) {
	tests := []struct {
		name  string
		delta float64
		want  string
	}{
		{"on", 4.9, "On pace"},
		{"on, below", -5, "On pace"},
		{"ahead rounds to whole points", 12.4, "12 points ahead of pace"},
		{"ahead rounds up", 11.5, "12 points ahead of pace"},
		{"under", -8.2, "8 points under pace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := shared.Meter{ID: "session", PercentUsed: 50 + tt.delta, ResetsAt: ptr(time.Unix(0, 0).Add(2*time.Hour + 30*time.Minute))}
			p, ok := shared.ComputePace(m, time.Unix(0, 0))
			if !ok {
				t.Fatal("no pace")
			}
			if got := BandText(p); got != tt.want {
				t.Errorf("BandText(delta %.2f) = %q, want %q", p.DeltaPercent, got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestProjectionText(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 40, 0, 0, time.UTC)
	loc := time.FixedZone("UTC+2", 2*3600)
	resets := now.Add(2*time.Hour + 20*time.Minute) // 15:00 UTC
	rate := 20.0
	tests := []struct {
		name, text, countdown string
		pace                  shared.Pace
	}{
		{"runs out today, local time", "Runs out at 15:20 — 1 h 40 min before reset", "in 40 min",
			shared.Pace{RatePerHour: &rate, RunsOutAt: ptr(now.Add(40 * time.Minute))}},
		{"runs out on another day", "Runs out at Wed 01:40 — 4 d 14 h before reset", "in 11 h",
			shared.Pace{RatePerHour: &rate, RunsOutAt: ptr(now.Add(11 * time.Hour))}},
		{"lasts", "Lasts until reset", "", shared.Pace{RatePerHour: &rate, WillLast: true}},
		{"no rate yet", "", "", shared.Pace{WillLast: true}},
		{"passed: no countdown", "Runs out at 14:30 — 2 h 30 min before reset", "",
			shared.Pace{RatePerHour: &rate, RunsOutAt: ptr(now.Add(-10 * time.Minute))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := resets
			if tt.name == "runs out on another day" {
				r = now.Add(5*24*time.Hour + time.Hour)
			}
			text, cd := ProjectionText(tt.pace, &r, now, loc)
			if text != tt.text || cd != tt.countdown {
				t.Errorf("ProjectionText = %q, %q; want %q, %q", text, cd, tt.text, tt.countdown)
			}
		})
	}
}

func TestUpdatedAndDurationTexts(t *testing.T) {
	for _, tt := range []struct {
		age  time.Duration
		want string
	}{
		{-time.Second, "Updated 0 s ago"}, {12 * time.Second, "Updated 12 s ago"}, {90 * time.Second, "Updated 1 min ago"},
		{3 * time.Hour, "Updated 3 h ago"}, {72 * time.Hour, "Updated 3 d ago"},
	} {
		if got := UpdatedText(tt.age); got != tt.want {
			t.Errorf("UpdatedText(%v) = %q, want %q", tt.age, got, tt.want)
		}
	}
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{30 * time.Second, "less than 1 min"}, {40 * time.Minute, "40 min"}, {100 * time.Minute, "1 h 40 min"},
		{2 * time.Hour, "2 h"}, {51 * time.Hour, "2 d 3 h"}, {48 * time.Hour, "2 d"},
	} {
		if got := DurationText(tt.d); got != tt.want {
			t.Errorf("DurationText(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
	for capture, want := range map[string]string{"api": "browser", "dom": "browser", "oauth": "oauth", "statusline": "statusline"} {
		if got := SourceName(capture); got != want {
			t.Errorf("SourceName(%q) = %q, want %q", capture, got, want)
		}
	}
}
