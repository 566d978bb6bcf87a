package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

const testKey = "runner-test-key-0123456789"

var t0 = time.Date(2026, 11, 28, 13, 50, 0, 0, time.UTC)

// clock is a fake clock that only moves when someone sleeps on it.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// recorder is a Sleep that advances the clock and records the waits.
type recorder struct {
	clk   *clock
	mu    sync.Mutex
	waits []time.Duration
	// after, when set, runs after each recorded wait (e.g. to stop Run).
	after func(n int)
}

func (r *recorder) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.clk.advance(d)
	r.mu.Lock()
	r.waits = append(r.waits, d)
	n := len(r.waits)
	r.mu.Unlock()
	if r.after != nil {
		r.after(n)
	}
	return ctx.Err()
}

func (r *recorder) got() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration{}, r.waits...)
}

// scripted is a Scraper that plays a function of the call number.
type scripted struct {
	mu    sync.Mutex
	calls int
	urls  []string
	clk   *clock
	fn    func(n int) error // nil error: a good snapshot
}

func (s *scripted) Scrape(ctx context.Context, url string) (shared.Snapshot, error) {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.urls = append(s.urls, url)
	s.mu.Unlock()
	if s.fn != nil {
		if err := s.fn(n); err != nil {
			return shared.Snapshot{}, err
		}
	}
	at := t0.Add(time.Duration(n) * time.Minute)
	if s.clk != nil {
		at = s.clk.Now()
	}
	r := at.Add(2 * time.Hour)
	return shared.Snapshot{ScrapedAt: at, Source: "claude.ai/settings/usage", Capture: shared.CaptureAPI,
		Meters: []shared.Meter{{ID: shared.MeterSession, Label: "Current session", PercentUsed: float64(n % 100), ResetsAt: &r}}}, nil
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func notLoggedIn(int) error {
	return scrapeerr.New(scrapeerr.NotLoggedIn, nil, "redirected to https://claude.ai/login")
}

// fakeServer plays the usage-server's two POST endpoints. usage decides
// the status of each snapshot POST (default 201).
type fakeServer struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	usage    func(n int, key string, snap shared.Snapshot) (status int, retryAfter string)
	keys     []string // Idempotency-Key of every snapshot POST, in order
	snaps    []shared.Snapshot
	statuses []shared.ScraperStatus
}

func newFakeServer(t *testing.T, usage func(n int, key string, snap shared.Snapshot) (int, string)) *fakeServer {
	t.Helper()
	f := &fakeServer{t: t, usage: usage}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get(shared.HeaderAPIKey) != testKey {
		f.t.Errorf("request without the key")
	}
	switch r.URL.Path {
	case shared.PathScraperStatus:
		var st shared.ScraperStatus
		if err := json.Unmarshal(body, &st); err != nil {
			f.t.Errorf("status body: %v", err)
		}
		f.mu.Lock()
		f.statuses = append(f.statuses, st)
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case shared.PathUsage:
		snap, err := shared.DecodeSnapshot(body)
		if err != nil {
			f.t.Errorf("snapshot body: %v", err)
		}
		key := r.Header.Get(shared.HeaderIdempotencyKey)
		f.mu.Lock()
		f.keys = append(f.keys, key)
		f.snaps = append(f.snaps, snap)
		n := len(f.keys)
		usage := f.usage
		f.mu.Unlock()
		status, ra := http.StatusCreated, ""
		if usage != nil {
			status, ra = usage(n, key, snap)
		}
		if ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status < 300 {
			fmt.Fprintf(w, `{"success":true,"version":%d,"id":"v%d","storedAt":"2026-11-28T13:50:01Z","requestId":"r%d"}`, n, n, n)
		} else {
			fmt.Fprintf(w, `{"errorCode":"X","message":"scripted %d","requestId":"r%d"}`, status, n)
		}
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeServer) seen() ([]string, []shared.Snapshot, []shared.ScraperStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.keys...), append([]shared.Snapshot{}, f.snaps...), append([]shared.ScraperStatus{}, f.statuses...)
}

// logBuf collects JSON log lines.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuf) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// rig is a runner on a fake clock with a real outbox and a real sync
// client.
type rig struct {
	clk      *clock
	runSleep *recorder // the runner's waits between cycles
	syncWait *recorder // the client's waits between attempts
	ob       *outbox.Outbox
	client   *upload.Client
	scraper  *scripted
	logs     *logBuf
	r        *Runner
}

func newRig(t *testing.T, serverURL string, fn func(n int) error, tweak func(*Config)) *rig {
	t.Helper()
	clk := &clock{t: t0}
	rg := &rig{clk: clk, runSleep: &recorder{clk: clk}, syncWait: &recorder{clk: clk}, logs: &logBuf{},
		scraper: &scripted{fn: fn, clk: clk}}
	log := slog.New(slog.NewJSONHandler(rg.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	rg.ob, err = outbox.Open(t.TempDir(), outbox.Options{Logger: log, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	tracker, err := upload.OpenTracker("", log)
	if err != nil {
		t.Fatal(err)
	}
	rg.client = &upload.Client{ServerURL: serverURL, APIKey: testKey, HTTPClient: &http.Client{Transport: tr},
		Logger: log, Sleep: rg.syncWait.Sleep, Now: clk.Now, AttemptTimeout: 2 * time.Second, Tracker: tracker}
	cfg := Config{Scraper: rg.scraper, Outbox: rg.ob, Client: rg.client, UsageURL: "https://claude.ai/settings/usage",
		Account: "work", Rand: func() float64 { return 0.5 }, Sleep: rg.runSleep.Sleep, Now: clk.Now, Logger: log}
	if tweak != nil {
		tweak(&cfg)
	}
	rg.r, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rg
}

// put queues n snapshots scraped a minute apart and returns their ids.
func (rg *rig) put(t *testing.T, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id, err := rg.ob.Put(shared.Snapshot{Account: "work", ScrapedAt: t0.Add(-time.Hour + time.Duration(i)*time.Minute),
			Capture: shared.CaptureAPI, Meters: []shared.Meter{{ID: "session", Label: "Current session", PercentUsed: float64(i)}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func (rg *rig) pending(t *testing.T) []string {
	t.Helper()
	items, err := rg.ob.List()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}
