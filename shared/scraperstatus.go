package shared

import (
	"fmt"
	"time"
	"unicode/utf8"
)

// MaxStatusMessage is the longest scraper-status message, in characters.
const MaxStatusMessage = 500

// DecodeScraperStatus parses a scraper-status POST body strictly: unknown
// fields and trailing data are rejected, and type errors name the field.
func DecodeScraperStatus(body []byte) (ScraperStatus, error) {
	return decodeStrict[ScraperStatus](body, "scraper status")
}

// Normalize fills the default account and puts the time in UTC; the server
// applies it before Validate.
func (st *ScraperStatus) Normalize() {
	if st.Account == "" {
		st.Account = DefaultAccount
	}
	st.At = st.At.UTC()
}

// Validate checks a scraper status at time now and returns a
// *ValidationError listing every problem, or nil.
func (st *ScraperStatus) Validate(now time.Time) error {
	var ps []FieldError
	add := func(field, format string, args ...any) {
		ps = append(ps, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if !AccountPattern.MatchString(st.Account) {
		add("account", "must match %s, got %q", AccountPattern, truncate(st.Account, 80))
	}
	switch {
	case st.At.IsZero():
		add("at", "is required")
	case timeProblem(st.At) != "":
		add("at", "%s", timeProblem(st.At))
	case st.At.After(now.Add(MaxFutureSkew)):
		add("at", "must not be more than 5 min in the future, got %s (server time %s)",
			st.At.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	switch {
	case st.Category == "" && !st.OK:
		add("category", "is required when ok is false")
	case st.Category != "" && !ScrapeClassPattern.MatchString(string(st.Category)):
		add("category", "must be an upper-case code such as NOT_LOGGED_IN, got %q", truncate(string(st.Category), 40))
	}
	if n := utf8.RuneCountInString(st.Message); n > MaxStatusMessage {
		add("message", "must be at most %d characters, got %d", MaxStatusMessage, n)
	} else if r := textProblem(st.Message); r != "" {
		add("message", "%s", r)
	}
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}
