package scrapeerr

import (
	"errors"
	"fmt"
	"testing"

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
