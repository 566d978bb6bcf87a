// Package scrapeerr carries a scrape failure with its class and maps the
// class to the exit code of `usage-scraper once`. The classes themselves,
// and the next step shown for each, are shared.ScrapeClass: one set for the
// scraper, the server and the widget.
package scrapeerr

import (
	"errors"
	"fmt"

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
)

// Error is a classified scrape failure.
type Error struct {
	Class Class
	Msg   string
	Err   error
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
