package shared

import (
	"fmt"
	"strings"
	"time"
	"unicode"
)

// The years every accepted time must fall in after conversion to UTC. The
// upper bound is what RFC 3339 (and so encoding/json and the store) can
// write; the lower one is older than any usage page, so a time before it is
// a broken clock or a hostile client, never data.
const (
	MinYear = 2000
	MaxYear = 9999
)

// CheckTime returns a *ValidationError naming field when t, converted to
// UTC, is outside years MinYear–MaxYear; nil otherwise. Every time the
// server accepts goes through it, before anything is kept.
func CheckTime(field string, t time.Time) error {
	if r := timeProblem(t); r != "" {
		return &ValidationError{Problems: []FieldError{{Field: field, Reason: r}}}
	}
	return nil
}

func timeProblem(t time.Time) string {
	if y := t.UTC().Year(); y < MinYear || y > MaxYear {
		return fmt.Sprintf("must be within years %d-%d in UTC, got year %d", MinYear, MaxYear, y)
	}
	return ""
}

// CheckText returns a *ValidationError naming field when s holds a
// control character (C0, DEL, C1: newlines and tabs included) or a
// bidirectional formatting character; nil otherwise. Labels and messages
// are shown to people: a bidi override can make "1 %" read "100 %", and a
// control character can forge log lines.
func CheckText(field, s string) error {
	if r := textProblem(s); r != "" {
		return &ValidationError{Problems: []FieldError{{Field: field, Reason: r}}}
	}
	return nil
}

func textProblem(s string) string {
	for i, r := range s {
		switch {
		case unicode.IsControl(r):
			return fmt.Sprintf("must not contain control characters, found %U at byte %d", r, i)
		case isBidiFormat(r):
			return fmt.Sprintf("must not contain bidirectional formatting characters, found %U at byte %d", r, i)
		}
	}
	return ""
}

// isBidiFormat reports the characters that change the display order of
// text around them: the embeddings and overrides (U+202A–U+202E), the
// isolates (U+2066–U+2069) and the marks (U+200E, U+200F, U+061C).
func isBidiFormat(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) ||
		r == 0x200E || r == 0x200F || r == 0x061C
}

// CleanText makes s acceptable to CheckText: each run of control
// characters becomes one space and bidirectional formatting characters are
// dropped. Senders use it on text they did not write (error messages, page
// text) so that a snapshot or status is not refused for it.
func CleanText(s string) string {
	if textProblem(s) == "" {
		return s
	}
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case unicode.IsControl(r):
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		case isBidiFormat(r):
			continue
		}
		b.WriteRune(r)
		space = false
	}
	return b.String()
}
