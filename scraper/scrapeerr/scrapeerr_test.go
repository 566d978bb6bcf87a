package scrapeerr

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

func TestExitCodes(t *testing.T) {
	tests := []struct {
		class Class
		want  int
	}{
		{NotLoggedIn, 3},
		{Challenge, 4},
		{LayoutChanged, 5},
		{Browser, 6},
		{Network, 7},
		{Unknown, 1},
		{shared.ScrapeOK, 1},
		{Class("SOMETHING_NEW"), 1},
	}
	for _, tt := range tests {
		t.Run(string(tt.class), func(t *testing.T) {
			if got := ExitCode(tt.class); got != tt.want {
				t.Errorf("ExitCode(%s) = %d, want %d", tt.class, got, tt.want)
			}
		})
	}
}

func TestClassOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"classified", New(Challenge, nil, "just a moment"), shared.ScrapeChallenge},
		{"wrapped", fmt.Errorf("once: %w", New(NotLoggedIn, errors.New("302"), "redirected")), shared.ScrapeNotLoggedIn},
		{"plain error", errors.New("boom"), shared.ScrapeUnknown},
		{"nil", nil, shared.ScrapeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClassOf(tt.err); got != tt.want {
				t.Errorf("ClassOf = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 28, 13, 50, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, in string
		want     time.Duration
		ok       bool
	}{
		{"seconds", "120", 2 * time.Minute, true},
		{"http date", "Sat, 28 Nov 2026 14:00:00 GMT", 10 * time.Minute, true},
		{"date in the past", "Sat, 28 Nov 2026 13:00:00 GMT", 0, true},
		{"empty", "", 0, false},
		{"negative", "-5", 0, false},
		{"garbage", "soon", 0, false},
		{"huge is capped at a week", "99999999999", 7 * 24 * time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseRetryAfter(tc.in, now)
			if got != tc.want || ok != tc.ok {
				t.Errorf("ParseRetryAfter(%q) = %s, %v, want %s, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestNextStepAndWait(t *testing.T) {
	own := New(NotLoggedIn, nil, "token expired").WithStep("run claude once to refresh its login")
	if got, want := NextStep(fmt.Errorf("wrapped: %w", own)), "run claude once to refresh its login"; got != want {
		t.Errorf("NextStep = %q, want %q", got, want)
	}
	if got, want := NextStep(New(NotLoggedIn, nil, "x")), shared.ScrapeNotLoggedIn.NextStep(); got != want {
		t.Errorf("NextStep = %q, want the class's %q", got, want)
	}
	rl := RateLimitedAfter(time.Minute, "the usage endpoint")
	if got, want := WaitOf(rl), MinRateLimitWait; got != want {
		t.Errorf("WaitOf = %s, want %s", got, want)
	}
	if got, want := ClassOf(rl), RateLimited; got != want {
		t.Errorf("class = %s, want %s", got, want)
	}
	if got, want := WaitOf(errors.New("plain")), time.Duration(0); got != want {
		t.Errorf("WaitOf(plain) = %s, want %s", got, want)
	}
}
