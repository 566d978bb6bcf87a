package runner

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
)

// drifting returns snapshots whose two readings disagree, and notes a
// fallback as the source chain does.
type drifting struct {
	scripted
	note string
}

func (d *drifting) Scrape(ctx context.Context, url string) (shared.Snapshot, error) {
	s, err := d.scripted.Scrape(ctx, url)
	s.Drift = map[string]shared.DriftPair{shared.MeterSession: {API: 42, DOM: 50}}
	return s, err
}

func (d *drifting) Note() string { return d.note }

// Drift travels in the snapshot, the scraper status says so (with the
// fallback the chain made) and the statistics count it.
func TestDriftAndNoteInStatus(t *testing.T) {
	srv := newFakeServer(t, nil)
	d := &drifting{note: "fell back to browser: oauth NOT_LOGGED_IN: run claude once to refresh its login"}
	rg := newRig(t, srv.srv.URL, nil, func(c *Config) { c.Scraper = d })
	res := rg.r.Cycle(t.Context())
	if res.ScrapeErr != nil || !res.Reported {
		t.Fatalf("cycle: %+v", res)
	}
	_, snaps, statuses := srv.seen()
	if len(snaps) != 1 || snaps[0].Drift[shared.MeterSession] != (shared.DriftPair{API: 42, DOM: 50}) {
		t.Fatalf("sent snapshots = %+v, want one with drift", snaps)
	}
	if len(statuses) != 1 {
		t.Fatalf("statuses = %+v", statuses)
	}
	st := statuses[0]
	if !st.OK {
		t.Errorf("status ok = false, want true")
	}
	for _, want := range []string{"drift: session 42% vs 50%", shared.DriftText, "fell back to browser"} {
		if !strings.Contains(st.Message, want) {
			t.Errorf("status message %q lacks %q", st.Message, want)
		}
	}
	dr := rg.client.Tracker.State().Drift
	if dr == nil || dr.Count != 1 {
		t.Fatalf("drift stat = %+v, want count 1", dr)
	}
	rg.r.Cycle(t.Context())
	if got, want := rg.client.Tracker.State().Drift.Count, 2; got != want {
		t.Errorf("drift count = %d, want %d", got, want)
	}
}

// A RATE_LIMITED scrape with a wait skips the cycles the wait covers, on
// top of the usual backoff, and is reported as RATE_LIMITED.
func TestRateLimitedWaitSkipsCycles(t *testing.T) {
	srv := newFakeServer(t, nil)
	rg := newRig(t, srv.srv.URL, func(n int) error {
		if n == 1 {
			return scrapeerr.RateLimitedAfter(20*time.Minute, "oauth: the usage endpoint")
		}
		return nil
	}, func(c *Config) { c.Interval = 5 * time.Minute })
	res := rg.r.Cycle(t.Context())
	if got, want := scrapeerr.ClassOf(res.ScrapeErr), scrapeerr.RateLimited; got != want {
		t.Fatalf("class = %q, want %q", got, want)
	}
	skipped := 0
	for range 5 {
		if r := rg.r.Cycle(t.Context()); r.Skipped != "" {
			skipped++
		} else {
			break
		}
	}
	// 20 min at 5 min a cycle: the next three cycles (5, 10, 15 min) wait.
	if got, want := skipped, 3; got != want {
		t.Errorf("skipped cycles = %d, want %d", got, want)
	}
	_, _, statuses := srv.seen()
	if len(statuses) == 0 || statuses[0].Category != shared.ScrapeRateLimited {
		t.Errorf("first status = %+v, want RATE_LIMITED", statuses)
	}
}
