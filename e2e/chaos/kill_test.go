//go:build !js

package chaos_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	gosync "sync"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/scraper/browser"
	"github.com/claude-usage/widget/scraper/fakeclaude"
	"github.com/claude-usage/widget/scraper/runner"
	"github.com/claude-usage/widget/shared"
)

// recordingScraper counts the snapshots the real browser took.
type recordingScraper struct {
	b  *browser.Browser
	mu gosync.Mutex
	at []string
}

func (r *recordingScraper) Scrape(ctx context.Context, url string) (shared.Snapshot, error) {
	snap, err := r.b.Scrape(ctx, url)
	if err == nil {
		r.mu.Lock()
		r.at = append(r.at, snap.ScrapedAt.UTC().Format(time.RFC3339Nano))
		r.mu.Unlock()
	}
	return snap, err
}

func (r *recordingScraper) taken() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.at...)
}

// TestServerKilledDuringSyncs: the scraper (its runner, outbox and sync
// client, scraping the fixture page in real headless Chromium every
// second) keeps scraping while the server is SIGKILLed, and after the
// restart every snapshot arrives exactly once.
func TestServerKilledDuringSyncs(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	site := httptest.NewServer(fakeclaude.Handler(fakeclaude.Options{}))
	t.Cleanup(site.Close)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b, err := browser.New(ctx, browser.Options{Headless: true, PageTimeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	sc := &recordingScraper{b: b}
	logs := &testutil.LogBuffer{}
	rec := &sleepRecorder{}
	ob := openOutbox(t)
	r, err := runner.New(runner.Config{Scraper: sc, Outbox: ob, UsageURL: fakeclaude.UsageURL(site.URL, fakeclaude.VariantLegacy),
		Client: newClient(srv.url(), apiKey, logs, rec, 3*time.Second), Interval: time.Second, Jitter: -1,
		ScrapeTimeout: 30 * time.Second, Logger: slogJSON(logs)})
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-runDone })

	versions := func() int { _, h := srv.health(t); return h.VersionCount }
	waitFor(t, 60*time.Second, "2 synced snapshots", func() bool { return versions() >= 2 })

	srv.kill()
	k := len(sc.taken())
	waitFor(t, 60*time.Second, "3 more scrapes with the server down", func() bool { return len(sc.taken()) >= k+3 })
	if n, _ := ob.Len(); n < 3 {
		t.Fatalf("outbox holds %d snapshots with the server down, want at least 3", n)
	}
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the outbox to drain after the restart", func() bool {
		n, _ := ob.Len()
		return n == 0 && versions() >= k+3
	})
	cancel()
	select {
	case <-runDone:
	case <-time.After(60 * time.Second):
		t.Fatal("runner did not stop")
	}
	// A snapshot scraped just before the stop is in the outbox: send it.
	if res := r.Drain(context.Background()); res.Err != nil {
		t.Fatalf("final drain: %v", res.Err)
	}

	if n, _ := ob.Len(); n != 0 {
		t.Errorf("outbox holds %d, want 0", n)
	}
	taken := sc.taken()
	files := versionFiles(t, srv.dataDir, shared.DefaultAccount)
	var stored []string
	keys := map[string]bool{}
	for _, f := range files {
		stored = append(stored, f.Snapshot.ScrapedAt.UTC().Format(time.RFC3339Nano))
		if keys[f.IdempotencyKey] {
			t.Errorf("idempotency key %s stored twice", f.IdempotencyKey)
		}
		keys[f.IdempotencyKey] = true
	}
	slices.Sort(taken)
	slices.Sort(stored)
	if !slices.Equal(taken, stored) {
		t.Errorf("stored scrapedAt = %v\nwant the %d snapshots taken = %v", stored, len(taken), taken)
	}
	if got, want := versions(), len(taken); got != want {
		t.Errorf("health versionCount = %d, want %d", got, want)
	}
	var retried bool
	for _, l := range attemptLines(t, logs.String()) {
		if l["category"] == "NETWORK" && l["retry"] == true && l["delayMs"] == float64(10000) {
			retried = true
		}
	}
	if !retried {
		t.Errorf("no NETWORK attempt retried after 10 s while the server was down:\n%s", logs)
	}
	t.Logf("snapshots taken and stored exactly once: %d (%d while the server was down)", len(taken), len(taken)-k)
}

// TestSoakKillRestart sends 1000 snapshots through the outbox and the sync
// client while the server is SIGKILLed and restarted at random points at
// least 5 times.
func TestSoakKillRestart(t *testing.T) {
	t.Parallel()
	const total, kills = 1000, 6
	srv := startServer(t, "", "--retention-versions", "5000")
	s := newSoak(t, srv.url(), total, 1, 150*time.Second, nil)
	at := s.killPoints(kills, 150, 100)
	t.Logf("kill after %v successful posts", at)
	// Every kill point lies at least 150 posts before the end, so all kills
	// happen while the outbox still drains.
	s.run(t, 2000, func() error {
		for _, n := range at {
			if err := s.waitPosts(n); err != nil {
				return err
			}
			if err := s.bounce(srv); err != nil {
				return err
			}
		}
		return nil
	})
	if got := s.killed.Load(); got < 5 {
		t.Fatalf("server killed %d times, want at least 5", got)
	}
	if n, _ := s.ob.Len(); n != 0 {
		t.Fatalf("outbox holds %d, want 0", n)
	}
	// The server must be up to answer; the last restart may be under way.
	waitFor(t, 20*time.Second, "the server to answer", func() bool {
		resp, err := http.Get(srv.url() + shared.PathHealth)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	files := versionFiles(t, srv.dataDir, shared.DefaultAccount)
	if got := len(files); got != total {
		t.Errorf("version files = %d, want %d", got, total)
	}
	labels := map[string]int{}
	keys := map[string]int{}
	ids := map[string]int{}
	for _, f := range files {
		labels[f.Snapshot.Meters[0].Label]++
		keys[f.IdempotencyKey]++
		ids[f.ID]++
	}
	for i := range total {
		if n := labels[fmt.Sprintf("n-%d", i)]; n != 1 {
			t.Errorf("snapshot n-%d stored %d times, want 1", i, n)
		}
	}
	if len(keys) != total || len(ids) != total {
		t.Errorf("distinct idempotency keys = %d, ids = %d, want %d each", len(keys), len(ids), total)
	}
	if _, h := srv.health(t); h.VersionCount != total || h.Storage.CorruptFiles != 0 {
		t.Errorf("health versionCount = %d corruptFiles = %d, want %d and 0", h.VersionCount, h.Storage.CorruptFiles, total)
	}
	t.Logf("%d snapshots, %d kills, %d successful posts (replays included), %s", total, s.killed.Load(), s.okPosts.Load(), time.Since(s.start).Round(time.Millisecond))
}
