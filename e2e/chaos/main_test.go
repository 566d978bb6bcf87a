//go:build !js

// Package chaos_test runs the real usage-server process and the scraper's
// own sync, outbox and runner code (and real headless Chromium scraping the
// fixture page) through real failures: SIGKILL, a wrong key, 503s, stalled
// responses, a corrupt store, a full disk and stale data. Every wait is
// bounded and every process is stopped by the test that started it.
package chaos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testbin"
	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

const (
	apiKey    = "chaos-write-key-0123456789"
	readToken = "chaos-read-token"
	// backoffScale shrinks the production waits (10/20/40 s) through the
	// client's Sleep hook; the logged delayMs stay the real policy's.
	backoffScale = 100
)

var (
	serverBin  string
	scraperBin string
	repoRoot   string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	if repoRoot, err = testutil.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "chaos-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if serverBin, err = testbin.Locate(tmp, "usage-server"); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	if scraperBin, err = testbin.Locate(tmp, "usage-scraper"); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	return m.Run()
}

// server is one usage-server process; restart keeps its port and data dir.
type server struct {
	addr    string
	dataDir string
	proc    *testutil.Process
	log     *testutil.LogBuffer // the output of every run of the process
}

// startServer runs usage-server on a free 127.0.0.1 port; dataDir "" means
// a new temp dir. The test's cleanup stops it.
func startServer(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	s := &server{addr: testutil.FreeAddr(t), dataDir: dataDir}
	args := append([]string{"--addr", s.addr, "--data-dir", s.dataDir,
		"--api-key", apiKey, "--read-token", readToken, "--rate-limit", "0",
		"--web-dir", filepath.Join(repoRoot, "web")}, extra...)
	s.proc = testutil.StartProcess(t, serverBin, args, testutil.ProcessOptions{})
	s.log = s.proc.Log
	if err := s.waitReady(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *server) url() string { return "http://" + s.addr }

// waitReady waits (bounded) until the server answers.
func (s *server) waitReady() error { return s.proc.WaitHTTP(s.url()+shared.PathHealth, 15*time.Second) }

// start runs the stopped or killed process again and waits until it
// answers. It returns errors instead of failing the test, so that a
// goroutine other than the test's may call it.
func (s *server) start() error {
	if err := s.proc.TryRestart(); err != nil {
		return err
	}
	return s.waitReady()
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() { s.proc.Kill() }

// stop ends the process (SIGTERM, then SIGKILL).
func (s *server) stop() { s.proc.Stop() }

// health reads /api/health.
func (s *server) health(t *testing.T) (int, shared.HealthResponse) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(s.url() + shared.PathHealth)
	if err != nil {
		t.Fatalf("GET health: %v", err)
	}
	defer resp.Body.Close()
	var h shared.HealthResponse
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("health body %q: %v", raw, err)
	}
	return resp.StatusCode, h
}

// latest reads GET /api/claude/console-usage with the read token.
func (s *server) latest(t *testing.T) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url()+shared.PathUsage, nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET usage: %v", err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// versionRecord is what the test reads back from a version file.
type versionRecord struct {
	ID             string          `json:"id"`
	IdempotencyKey string          `json:"idempotencyKey"`
	Snapshot       shared.Snapshot `json:"snapshot"`
}

// versionFiles parses every version file of account; any file that does
// not parse fails the test.
func versionFiles(t *testing.T, dataDir, account string) []versionRecord {
	t.Helper()
	dir := filepath.Join(dataDir, account, "versions")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("reading %s: %v", dir, err)
	}
	var out []versionRecord
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var r versionRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("version file %s does not parse: %v", e.Name(), err)
		}
		if err := r.Snapshot.Validate(r.Snapshot.ScrapedAt); err != nil {
			t.Fatalf("version file %s holds an invalid snapshot: %v", e.Name(), err)
		}
		out = append(out, r)
	}
	return out
}

// newSnapshot is a valid snapshot whose label carries n, so a test can
// count each one on the server.
func newSnapshot(n int, scrapedAt time.Time) shared.Snapshot {
	r := scrapedAt.Add(2 * time.Hour).UTC().Truncate(time.Second)
	return shared.Snapshot{
		Account:   shared.DefaultAccount,
		ScrapedAt: scrapedAt.UTC(),
		Source:    "claude.ai/settings/usage",
		Capture:   "api",
		Meters: []shared.Meter{
			{ID: "session", Label: fmt.Sprintf("n-%d", n), PercentUsed: float64(n % 100), ResetsAt: &r},
		},
	}
}

// sleepRecorder is the client's Sleep hook: it records each requested wait
// and waits a scaled-down time for real.
type sleepRecorder struct {
	mu    gosync.Mutex
	waits []time.Duration
}

func (r *sleepRecorder) sleep(ctx context.Context, d time.Duration) error {
	r.mu.Lock()
	r.waits = append(r.waits, d)
	r.mu.Unlock()
	tm := time.NewTimer(d / backoffScale)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

func (r *sleepRecorder) all() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.waits...)
}

// newClient is the scraper's real sync client with JSON logs into logs.
func newClient(serverURL, key string, logs io.Writer, rec *sleepRecorder, attemptTimeout time.Duration) *upload.Client {
	return &upload.Client{
		ServerURL:      serverURL,
		APIKey:         key,
		HTTPClient:     &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		Logger:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Sleep:          rec.sleep,
		AttemptTimeout: attemptTimeout,
	}
}

func openOutbox(t *testing.T) *outbox.Outbox {
	t.Helper()
	ob, err := outbox.Open(t.TempDir(), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ob
}

// logLine is one JSON log record.
type logLine map[string]any

// attemptLines returns the "sync attempt" records of logs.
func attemptLines(t *testing.T, logs string) []logLine {
	t.Helper()
	var out []logLine
	for _, l := range strings.Split(logs, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		var rec logLine
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", l, err)
		}
		if rec["msg"] == "sync attempt" {
			out = append(out, rec)
		}
	}
	return out
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func slogJSON(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// countingProxy is an HTTP reverse proxy to target that counts requests.
func countingProxy(t *testing.T, target string, hits *atomic.Int32) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{DisableKeepAlives: true}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s.URL
}
