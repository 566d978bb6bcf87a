// Package scrapeerr names the ways a scrape of the usage page can fail. Each
// class has its own exit code, log line and next step for the user.
package scrapeerr

import (
	"errors"
	"fmt"

	"github.com/claude-usage/widget/shared"
)

// Class is a scrape failure class; the values are shared.Scrape* constants.
type Class string

const (
	NotLoggedIn   Class = shared.ScrapeNotLoggedIn
	Challenge     Class = shared.ScrapeChallenge
	LayoutChanged Class = shared.ScrapeLayoutChanged
	Browser       Class = shared.ScrapeBrowser
	Network       Class = shared.ScrapeNetwork
	Unknown       Class = shared.ScrapeUnknown
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

// NextStep is the advice shown in logs and in the widget for a class. The
// texts live in shared so that the widget, which must not import the
// scraper, shows the same words.
func (c Class) NextStep() string { return shared.ScrapeNextStep(string(c)) }

// Exit codes of `usage-scraper once` (DESIGN.md, Commands).
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

// ExitCode maps a class to the exit code of `once`.
func (c Class) ExitCode() int {
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
