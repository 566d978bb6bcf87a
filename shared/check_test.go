package shared

import (
	"errors"
	"testing"
	"time"
)

func TestCheckTime(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
		ok   bool
	}{
		{"2026", time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC), true},
		{"first instant of 2000", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"last second of 9999", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), true},
		{"1999", time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC), false},
		{"2000 locally, 1999 in UTC", time.Date(2000, 1, 1, 0, 30, 0, 0, plusOne), false},
		{"9999 locally, 10000 in UTC", time.Date(9999, 12, 31, 23, 30, 0, 0, minusOne), false},
		{"zero", time.Time{}, false},
		{"unix epoch", time.Unix(0, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckTime("meters[2].resetsAt", tt.t)
			if tt.ok {
				if err != nil {
					t.Fatalf("CheckTime = %v, want nil", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("CheckTime = %v, want a *ValidationError", err)
			}
			if got, want := ve.Field(), "meters[2].resetsAt"; got != want {
				t.Errorf("field = %q, want %q", got, want)
			}
		})
	}
}

func TestCheckTextAndCleanText(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
		clean    string
	}{
		{"plain", "Current session", true, "Current session"},
		{"unicode text", "Sonnet · 5 h — café ✓ 日本", true, "Sonnet · 5 h — café ✓ 日本"},
		{"zero width joiner stays", "a\u200db", true, "a\u200db"},
		{"newline", "line one\nline two", false, "line one line two"},
		{"CR LF run", "a\r\n\tb", false, "a b"},
		{"NUL", "a\x00b", false, "a b"},
		{"escape sequence", "a\x1b[31mb", false, "a [31mb"},
		{"C1", "a\u009bb", false, "a b"},
		{"override", "1 \u202e001%", false, "1 001%"},
		{"isolate", "\u2066a\u2069", false, "a"},
		{"marks", "\u200ea\u200f\u061c", false, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckText("message", tt.in)
			if got := err == nil; got != tt.ok {
				t.Fatalf("CheckText(%q) = %v, want ok %v", tt.in, err, tt.ok)
			}
			if err != nil {
				var ve *ValidationError
				if !errors.As(err, &ve) || ve.Field() != "message" {
					t.Errorf("CheckText error %v does not name the field", err)
				}
			}
			got := CleanText(tt.in)
			if got != tt.clean {
				t.Errorf("CleanText(%q) = %q, want %q", tt.in, got, tt.clean)
			}
			if err := CheckText("message", got); err != nil {
				t.Errorf("CleanText's result is refused: %v", err)
			}
		})
	}
}

func TestTruncateKeepsWholeCharacters(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "abc…"},
		{"ééé", 2, "éé…"},
		{"日本語", 3, "日本語"},
		{"", 0, ""},
	}
	for _, tt := range tests {
		if got := truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
