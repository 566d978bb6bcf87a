// Package source picks where a scrape reads the usage from: Claude Code's
// OAuth login first when it exists, the browser as the fallback (--source
// auto), or one of them alone. It records each source's outcome for
// `usage-scraper status` and tells the runner when it fell back, so the
// scraper status says so.
package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/claude-usage/widget/scraper/parse"
	"github.com/claude-usage/widget/scraper/runner"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

// Names of the sources and of the --source modes.
const (
	Auto       = "auto"
	OAuth      = "oauth"
	Browser    = "browser"
	Statusline = "statusline"
)

// Modes are the values --source takes.
var Modes = []string{Auto, Browser, OAuth}

// Source is one way to read the usage.
type Source struct {
	Name    string
	Scraper runner.Scraper
	// Present reports whether the source is set up on this machine (for
	// oauth: Claude Code's login exists); a source that is not is skipped
	// without counting as a failure. nil: always present.
	Present func(ctx context.Context) bool
}

// Chain tries its sources in order until one gives a snapshot.
type Chain struct {
	Sources []Source
	Tracker *upload.Tracker // per-source records; may be nil
	Logger  *slog.Logger
	// CrossCheck also runs the next present source after one answered and
	// compares the two readings: meters more than shared.DriftPoints apart
	// go into the snapshot's Drift (first source as API, second as DOM).
	// The second source's failure only is recorded; the snapshot stands.
	CrossCheck bool

	mu   sync.Mutex
	note string
}

// Scrape reads the usage from the first present source that succeeds.
// When all fail, the error is the last source's, naming the others'.
func (c *Chain) Scrape(ctx context.Context, url string) (shared.Snapshot, error) {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "source")
	var failed []string
	var last error
	tried := 0
	for i, s := range c.Sources {
		if s.Present != nil && !s.Present(ctx) {
			log.Debug("source not set up; skipped", "source", s.Name)
			continue
		}
		tried++
		snap, err := s.Scraper.Scrape(ctx, url)
		at := time.Now()
		if err == nil {
			c.record(s.Name, at, true, "", "")
			note := ""
			if len(failed) > 0 {
				note = fmt.Sprintf("fell back to %s: %s", s.Name, strings.Join(failed, "; "))
				log.Warn("source fell back", "source", s.Name, "failed", strings.Join(failed, "; "))
			}
			if c.CrossCheck {
				snap = c.crossCheck(ctx, log, snap, s.Name, c.Sources[i+1:], url)
			}
			c.setNote(note)
			return snap, nil
		}
		if ctx.Err() != nil {
			return snap, err
		}
		class := scrapeerr.ClassOf(err)
		c.record(s.Name, at, false, string(class), err.Error())
		log.Warn("source failed", "source", s.Name, "category", string(class), "nextStep", scrapeerr.NextStep(err), "error", err.Error())
		failed = append(failed, fmt.Sprintf("%s %s: %s", s.Name, class, scrapeerr.NextStep(err)))
		last = err
	}
	c.setNote("")
	if tried == 0 {
		return shared.Snapshot{}, scrapeerr.New(scrapeerr.NotLoggedIn, nil, "source: no source is set up").
			WithStep("sign in to Claude Code (`claude`) or run `usage-scraper login`")
	}
	if len(failed) > 1 {
		var se *scrapeerr.Error
		if errors.As(last, &se) {
			// The class and next step are the last source's (the fallback
			// a human fixes last); the message names every failure.
			return shared.Snapshot{}, &scrapeerr.Error{Class: se.Class, Step: se.Step, Wait: se.Wait,
				Msg: "every source failed (" + strings.Join(failed[:len(failed)-1], "; ") + "); " + se.Msg, Err: se.Err}
		}
	}
	return shared.Snapshot{}, last
}

// crossCheck reads the first present source of rest and adds the drift
// between it and snap (read from name) to snap.
func (c *Chain) crossCheck(ctx context.Context, log *slog.Logger, snap shared.Snapshot, name string, rest []Source, url string) shared.Snapshot {
	for _, o := range rest {
		if o.Present != nil && !o.Present(ctx) {
			continue
		}
		other, err := o.Scraper.Scrape(ctx, url)
		at := time.Now()
		if err != nil {
			if ctx.Err() == nil {
				c.record(o.Name, at, false, string(scrapeerr.ClassOf(err)), err.Error())
				log.Warn("cross-check source failed", "source", o.Name, "category", string(scrapeerr.ClassOf(err)), "error", err.Error())
			}
			return snap
		}
		c.record(o.Name, at, true, "", "")
		c.record(name, at, true, "", "") // the answer stays the first source's
		for id, d := range parse.DriftOf(snap, other) {
			if snap.Drift == nil {
				snap.Drift = map[string]shared.DriftPair{}
			}
			if _, ok := snap.Drift[id]; !ok {
				snap.Drift[id] = d
			}
		}
		log.Debug("cross-checked", "source", name, "against", o.Name, "drift", len(snap.Drift))
		return snap
	}
	return snap
}

// Note is what the last successful scrape should add to the scraper
// status: which source failed before the one that answered.
func (c *Chain) Note() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.note
}

func (c *Chain) setNote(n string) {
	c.mu.Lock()
	c.note = n
	c.mu.Unlock()
}

func (c *Chain) record(name string, at time.Time, ok bool, category, message string) {
	if c.Tracker != nil {
		c.Tracker.RecordSource(name, at, ok, category, message)
	}
}
