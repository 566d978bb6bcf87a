package runner

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

// Run on real timers (the bubble's fake clock) with no injected sleeper:
// cycles start every 5 min, a 503 costs exactly the 10 s retry wait, and
// cancelling stops everything; synctest.Test fails if a goroutine or timer
// of the bubble is left behind.
func TestRunOnRealTimersStopsCleanly(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, func(n int, _ string, _ shared.Snapshot) (int, string) {
		if n == 2 {
			return 503, ""
		}
		return 201, ""
	})
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		ob, err := outbox.Open(dir, outbox.Options{})
		if err != nil {
			t.Fatal(err)
		}
		// Keep-alives off: an idle connection's reader would sit in a
		// network read, which synctest does not count as blocked.
		client := &upload.Client{ServerURL: fs.srv.URL, APIKey: testKey,
			HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
		var at []time.Duration
		start := time.Now()
		sc := &scripted{fn: func(int) error { at = append(at, time.Since(start)); return nil }}
		r, err := New(Config{Scraper: sc, Outbox: ob, Client: client, UsageURL: "https://claude.ai/settings/usage",
			Rand: func() float64 { return 0.5 }, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		time.Sleep(12 * time.Minute)
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if got, want := time.Since(start), 12*time.Minute; got != want {
			t.Errorf("Run returned at %v, want %v (at the cancel)", got, want)
		}
		want := []time.Duration{0, 5 * time.Minute, 10 * time.Minute}
		if len(at) != len(want) || at[0] != want[0] || at[1] != want[1] || at[2] != want[2] {
			t.Errorf("scrapes at %v, want %v", at, want)
		}
		if n, _ := ob.Len(); n != 0 {
			t.Errorf("outbox holds %d after the retried sync, want 0", n)
		}
	})
	if keys, _, _ := fs.seen(); len(keys) != 4 || keys[1] != keys[2] {
		t.Errorf("POSTs = %v, want 4 with the retried one twice", keys)
	}
}
