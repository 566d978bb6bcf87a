package shared

import (
	"fmt"
	"testing"
)

func TestPatterns(t *testing.T) {
	tests := []struct {
		name string
		p    *Pattern
		in   string
		want bool
	}{
		{"account ok", AccountPattern, "team.a@b-c", true},
		{"account leading dot", AccountPattern, ".hidden", false},
		{"account slash", AccountPattern, "a/b", false},
		{"meter ok", MeterIDPattern, "weekly_opus", true},
		{"meter upper", MeterIDPattern, "Weekly", false},
		{"meter too long", MeterIDPattern, "a123456789012345678901234567890123456789012345678", false},
		{"class ok", ScrapeClassPattern, "NOT_LOGGED_IN", true},
		{"class lower", ScrapeClassPattern, "not_logged_in", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.MatchString(tt.in); got != tt.want {
				t.Errorf("%s.MatchString(%q) = %v, want %v", tt.p, tt.in, got, tt.want)
			}
		})
	}
	// Error messages quote the expression through %s.
	if got, want := fmt.Sprintf("must match %s", MeterIDPattern), "must match ^[a-z0-9_]{1,48}$"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
