package parse

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
)

// Page is what the browser's tab showed when a scrape ended. The JSON
// names are those of the script the browser evaluates in the tab.
type Page struct {
	URL   string `json:"url"`
	Title string `json:"title"`
	Text  string `json:"text"`
	// TZ is the page's IANA time zone, "" when the browser gave none.
	TZ string `json:"tz"`
	// Challenge is set when the page carries Cloudflare's challenge
	// markup, which stays the same in every language the interstitial
	// speaks.
	Challenge bool `json:"cf"`
}

// Class classifies the page: NotLoggedIn, Challenge, or "" for a page that
// may hold meters.
func (p Page) Class() scrapeerr.Class {
	if p.Challenge {
		return scrapeerr.Challenge
	}
	return DetectPage(p.URL, p.Title, p.Text)
}

// Capture is everything one load of the usage page gave.
type Capture struct {
	Page Page
	// APIBody is the last usage JSON the page loaded; nil when none was read.
	APIBody   []byte
	APIStatus int64
	// APIRetryAfter is the Retry-After header of a usage request answered
	// 429, as sent.
	APIRetryAfter string
	// APIFailures are the usage requests that failed (an HTTP status or
	// Chromium's error text).
	APIFailures []string
}

// Note is a finding of Build that deserves a log line; Build itself does
// not log, so that it stays a pure function of its inputs.
type Note struct {
	Level      slog.Level
	Msg        string
	Key, Value string
}

// Build turns a capture into the scrape's snapshot: the page classified
// first (a sign-in page or a challenge is an error of its class), then both
// captures parsed, compared (every disagreement is a Note) and merged by
// Merge's rule. loc is the time zone for the page's reset texts; nil means
// the page's own, else the machine's. now stamps ScrapedAt and anchors
// relative texts. Every error is a *scrapeerr.Error.
func Build(c Capture, now time.Time, loc *time.Location) (shared.Snapshot, []Note, error) {
	st := c.Page
	if c.rateLimited() && st.Class() != scrapeerr.Challenge {
		return buildRateLimited(c, now, loc)
	}
	if class := st.Class(); class != "" {
		msg := "the usage page redirected to a sign-in page"
		if class == scrapeerr.Challenge {
			msg = "the usage page showed a browser check"
		}
		return shared.Snapshot{}, nil, scrapeerr.New(class, nil, "browser: %s (%s, title %q)", msg, st.URL, st.Title)
	}
	dom, domErr := ParseDOM(st.Text, now, pageLocation(st, loc))

	var api shared.Snapshot
	apiErr := errors.New("browser: no usage JSON captured")
	if len(c.APIFailures) > 0 {
		apiErr = fmt.Errorf("browser: usage JSON failed: %s", strings.Join(c.APIFailures, ", "))
	}
	if c.APIBody != nil {
		if c.APIStatus >= 400 {
			apiErr = fmt.Errorf("browser: usage JSON answered HTTP %d", c.APIStatus)
		} else {
			api, apiErr = ParseAPI(c.APIBody, now)
		}
	}
	var notes []Note
	var drift map[string]shared.DriftPair
	switch {
	case apiErr == nil && domErr == nil:
		for _, d := range Compare(api, dom) {
			notes = append(notes, Note{slog.LevelWarn, "captures disagree", "detail", d})
		}
		drift = DriftOf(api, dom)
	case apiErr == nil:
		// Nothing is lost now, but the fallback would fail the day the
		// JSON goes missing; saying so early gives time to fix the parser.
		notes = append(notes, Note{slog.LevelWarn, "page text gave no meter; the fallback capture would fail", "reason", domErr.Error()})
	case domErr == nil:
		notes = append(notes, Note{slog.LevelInfo, "using the page text", "reason", apiErr.Error()})
	}
	out, err := Merge(api, apiErr, dom, domErr)
	if err != nil {
		var se *scrapeerr.Error
		if errors.As(err, &se) {
			err = scrapeerr.New(se.Class, se.Err, "browser: %s, on %s (title %q)", strings.TrimPrefix(se.Msg, "parse: "), st.URL, st.Title)
		}
		return out, notes, err
	}
	out.Source = Source
	out.ScrapedAt = now.UTC()
	out.Account = ""
	out.Drift = drift
	return out, notes, nil
}

func pageLocation(st Page, loc *time.Location) *time.Location {
	if loc == nil && st.TZ != "" {
		if l, err := time.LoadLocation(st.TZ); err == nil {
			loc = l
		}
	}
	if loc == nil {
		loc = time.Local
	}
	return loc
}

// rateLimited: the page's usage request was answered 429.
func (c Capture) rateLimited() bool {
	return c.APIStatus == 429 || slices.Contains(c.APIFailures, "HTTP 429")
}

// buildRateLimited handles a usage request answered 429. The page may
// then show an error or even a sign-in prompt, which says nothing about
// the login or the layout: the outcome is the page's own meters when it
// still shows them, else RATE_LIMITED with the wait.
func buildRateLimited(c Capture, now time.Time, loc *time.Location) (shared.Snapshot, []Note, error) {
	if c.Page.Class() == "" {
		if dom, err := ParseDOM(c.Page.Text, now, pageLocation(c.Page, loc)); err == nil {
			dom.Source, dom.ScrapedAt, dom.Account = Source, now.UTC(), ""
			return dom, []Note{{slog.LevelWarn, "usage JSON rate limited; using the page text", "retryAfter", c.APIRetryAfter}}, nil
		}
	}
	ra, _ := scrapeerr.ParseRetryAfter(c.APIRetryAfter, now)
	return shared.Snapshot{}, nil, scrapeerr.RateLimitedAfter(ra, "browser: the usage page's usage request")
}
