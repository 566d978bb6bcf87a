// Package scrapeerr carries a scrape failure with its class and maps the
// class to the exit code of `usage-scraper once`. The classes themselves,
// and the next step shown for each, are shared.ScrapeClass: one set for the
// scraper, the server and the widget.
package scrapeerr

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/claude-usage/widget/shared"
)

// Class is shared.ScrapeClass under the name the scraper's code uses.
type Class = shared.ScrapeClass

// The classes, as the scraper's code names them (the same constants as
// shared's, not copies).
const (
	NotLoggedIn   = shared.ScrapeNotLoggedIn
	Challenge     = shared.ScrapeChallenge
	LayoutChanged = shared.ScrapeLayoutChanged
	Browser       = shared.ScrapeBrowser
	Network       = shared.ScrapeNetwork
	Unknown       = shared.ScrapeUnknown
	RateLimited   = shared.ScrapeRateLimited
	NoDisplay     = shared.ScrapeNoDisplay
	ProfileInUse  = shared.ScrapeProfileInUse
)

// Error is a classified scrape failure.
type Error struct {
	Class Class
	Msg   string
	Err   error
	// Step replaces the class's next step when the source knows better
	// (an expired OAuth login is fixed in Claude Code, not by our login).
	Step string
	// Wait is how long the source asked us to stay away (RATE_LIMITED).
	Wait time.Duration
}

// New returns a classified error.
func New(c Class, err error, format string, args ...any) *Error {
	return &Error{Class: c, Msg: fmt.Sprintf(format, args...), Err: err}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return "scrape: " + string(e.Class) + ": " + e.Msg + ": " + e.Err.Error()
	}
	return "scrape: " + string(e.Class) + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// NextStep is the advice shown with the error: Step, else the class's.
func (e *Error) NextStep() string {
	if e.Step != "" {
		return e.Step
	}
	return e.Class.NextStep()
}

// WithStep sets the next step and returns e.
func (e *Error) WithStep(step string) *Error { e.Step = step; return e }

// WithWait sets the wait the source asked for and returns e.
func (e *Error) WithWait(d time.Duration) *Error { e.Wait = d; return e }

// NextStep is err's advice: its own step when it is an *Error, else the
// class's.
func NextStep(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.NextStep()
	}
	return ClassOf(err).NextStep()
}

// WaitOf is the wait a RATE_LIMITED err asks for, or 0.
func WaitOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.Wait
	}
	return 0
}

// ClassOf returns the class of err; unclassified errors are Unknown.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Unknown
}

// Exit codes of `usage-scraper once` (README, "Troubleshooting the scraper").
const (
	ExitOK            = 0
	ExitOther         = 1
	ExitUsage         = 2
	ExitNotLoggedIn   = 3
	ExitChallenge     = 4
	ExitLayoutChanged = 5
	ExitBrowser       = 6
	ExitNetwork       = 7
)

// ExitCode maps a class to the exit code of `once`; classes without their
// own code (Unknown, ones a newer scraper adds) exit with ExitOther.
func ExitCode(c Class) int {
	switch c {
	case NotLoggedIn:
		return ExitNotLoggedIn
	case Challenge:
		return ExitChallenge
	case LayoutChanged:
		return ExitLayoutChanged
	case Browser:
		return ExitBrowser
	case Network:
		return ExitNetwork
	}
	return ExitOther
}

// MinRateLimitWait is the least a 429 keeps the scraper away from the
// source, whatever Retry-After says (or when it says nothing).
const MinRateLimitWait = 5 * time.Minute

// RateLimitedAfter is a RATE_LIMITED error that waits retryAfter, at least
// MinRateLimitWait; the message names the wait.
func RateLimitedAfter(retryAfter time.Duration, what string) *Error {
	wait := max(retryAfter, MinRateLimitWait)
	return New(RateLimited, nil, "%s answered 429 Too Many Requests; waiting %s", what, wait).WithWait(wait)
}

// ParseRetryAfter reads a Retry-After header: seconds or an HTTP date
// (relative to now). ok is false for an empty or unreadable value.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, 7*24*3600)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
