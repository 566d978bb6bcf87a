package fakeclaude

import (
	"context"
	"testing"
	"time"

	"github.com/claude-usage/widget/scraper/browser"
)

// TestDemoScrapedInChromium is what `usage-scraper run --demo` does: the
// demo site scraped by the real browser, read through the JSON capture.
func TestDemoScrapedInChromium(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 11, 28, 12, 30, 0, 0, time.UTC)}
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	base, err := Start(ctx, "", clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := browser.New(ctx, browser.Options{Headless: true, Now: clock.Now, PageTimeout: 15 * time.Second, MeterWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, step := range []time.Duration{0, 90 * time.Minute} {
		clock.Set(clock.Now().Add(step))
		snap, err := b.Scrape(ctx, UsageURL(base, ""))
		if err != nil {
			t.Fatalf("scrape at %s: %v", clock.Now(), err)
		}
		want := DemoUsage(clock.Now())
		if got, want := snap.Capture, "api"; got != want {
			t.Errorf("capture = %q, want %q", got, want)
		}
		m, ok := snap.Meter("session")
		if !ok {
			t.Fatalf("no session meter in %+v", snap.Meters)
		}
		if got, want := m.PercentUsed, want.Session; got != want {
			t.Errorf("session at %s = %g, want %g", clock.Now().Format(time.TimeOnly), got, want)
		}
		if m.ResetsAt == nil || !m.ResetsAt.Equal(want.SessionResets) {
			t.Errorf("session resets = %v, want %s", m.ResetsAt, want.SessionResets)
		}
	}
}
