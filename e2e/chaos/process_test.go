//go:build !js

package chaos_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/scraper/browser"
	"github.com/claude-usage/widget/scraper/fakeclaude"
	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/shared"
)

// logRecords parses JSON log lines, skipping anything else.
func logRecords(s string) []logLine {
	var out []logLine
	for _, l := range strings.Split(s, "\n") {
		var rec logLine
		if json.Unmarshal([]byte(l), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

// TestScraperProcessSurvivesServerKill runs the real `usage-scraper run`
// binary (real Chromium on the fixture page, the shortest allowed
// interval, the production 10 s first retry) while the server is
// SIGKILLed between its scrapes and restarted during the retry wait.
func TestScraperProcessSurvivesServerKill(t *testing.T) {
	t.Parallel()
	chrome, err := browser.FindChrome("")
	if err != nil {
		t.Fatalf("Chromium: %v", err)
	}
	srv := startServer(t, "")
	site := httptest.NewServer(fakeclaude.Handler(fakeclaude.Options{}))
	t.Cleanup(site.Close)
	dir := t.TempDir()
	obDir := filepath.Join(dir, "outbox")
	scraper := testutil.StartProcess(t, scraperBin, []string{"run", "--server", srv.url(), "--api-key", apiKey,
		"--usage-url", fakeclaude.UsageURL(site.URL, fakeclaude.VariantLegacy), "--interval", "10s",
		"--outbox-dir", obDir, "--profile-dir", filepath.Join(dir, "profile"),
		"--chrome-path", chrome, "--headless", "--log-level", "debug"}, testutil.ProcessOptions{})
	logs := scraper.Log

	count := func(pred func(logLine) bool) int {
		n := 0
		for _, r := range logRecords(logs.String()) {
			if pred(r) {
				n++
			}
		}
		return n
	}
	scraped := func() int { return count(func(r logLine) bool { return r["msg"] == "scraped" }) }
	versions := func() int { _, h := srv.health(t); return h.VersionCount }

	waitFor(t, 60*time.Second, "the first snapshot on the server", func() bool { return versions() >= 1 })
	srv.kill()
	waitFor(t, 60*time.Second, "a failed sync scheduled for retry in 10 s", func() bool {
		return count(func(r logLine) bool {
			return r["msg"] == "sync attempt" && r["category"] == "NETWORK" && r["retry"] == true && r["delayMs"] == float64(10000)
		}) >= 1
	})
	down := scraped()
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the retry to deliver the snapshot taken while the server was down", func() bool {
		return versions() >= down
	})
	scraper.Stop()

	// A scrape cut short by the stop may leave a snapshot in the outbox;
	// the next run sends it, as this drain does.
	ob, err := outbox.Open(obDir, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &sleepRecorder{}
	if res := drainer(t, ob, newClient(srv.url(), apiKey, logs, rec, 5*time.Second), logs).Drain(context.Background()); res.Err != nil {
		t.Fatalf("final drain: %+v", res)
	}
	if n, _ := ob.Len(); n != 0 {
		t.Errorf("outbox holds %d, want 0", n)
	}
	taken := scraped()
	files := versionFiles(t, srv.dataDir, shared.DefaultAccount)
	keys := map[string]bool{}
	for _, f := range files {
		keys[f.IdempotencyKey] = true
	}
	if len(files) != taken || len(keys) != taken {
		t.Errorf("server holds %d versions with %d distinct keys, want the %d snapshots taken exactly once", len(files), len(keys), taken)
	}
	if code := count(func(r logLine) bool { return r["msg"] == "snapshot synced" }); code < 1 {
		t.Errorf("no synced snapshot logged")
	}
	t.Logf("scraper process: %d snapshots taken, %d stored, %d taken before the restart", taken, len(files), down)
	if t.Failed() {
		t.Logf("scraper log:\n%s", logs)
	}
}
