package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

const testKey = "runner-test-key-0123456789"

// scripted is a Scraper that plays a function of the call number.
type scripted struct {
	mu    sync.Mutex
	calls int
	urls  []string
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
	at := time.Now().UTC()
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

// fakeServer plays the usage-server's two POST endpoints on 127.0.0.1.
// usage decides the status of each snapshot POST (default 201; 0 drops the
// connection).
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
		if status == 0 { // a server that goes away mid-request
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		if ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		testutil.WriteUsageAnswer(w, status, n, fmt.Sprintf("r%d", n))
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeServer) seen() ([]string, []shared.Snapshot, []shared.ScraperStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.keys...), append([]shared.Snapshot{}, f.snaps...), append([]shared.ScraperStatus{}, f.statuses...)
}

// rig is a runner with a real outbox and a real upload client. Made inside
// a synctest bubble, every wait (between cycles, between attempts) runs on
// the bubble's fake clock; the fake server lives outside the bubble, so
// keep-alives are off (an idle connection's reader would sit in a network
// read, which synctest does not count as blocked).
type rig struct {
	start   time.Time
	ob      *outbox.Outbox
	client  *upload.Client
	posts   *testutil.StampTransport
	scraper *scripted
	logs    *testutil.LogBuffer
	r       *Runner
}

func newRig(t *testing.T, serverURL string, fn func(n int) error, tweak func(*Config)) *rig {
	t.Helper()
	rg := &rig{start: time.Now(), logs: &testutil.LogBuffer{}, scraper: &scripted{fn: fn}}
	log := slog.New(slog.NewJSONHandler(rg.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	rg.ob, err = outbox.Open(t.TempDir(), outbox.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	tracker, err := upload.OpenTracker("", log)
	if err != nil {
		t.Fatal(err)
	}
	rg.posts = &testutil.StampTransport{Next: &http.Transport{DisableKeepAlives: true}, Start: rg.start, Path: shared.PathUsage}
	rg.client = &upload.Client{ServerURL: serverURL, APIKey: testKey, HTTPClient: &http.Client{Transport: rg.posts},
		Logger: log, AttemptTimeout: 2 * time.Second, Tracker: tracker}
	cfg := Config{Scraper: rg.scraper, Outbox: rg.ob, Client: rg.client, UsageURL: "https://claude.ai/settings/usage",
		Account: "work", Rand: func() float64 { return 0.5 }, Logger: log}
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
		id, err := rg.ob.Put(shared.Snapshot{Account: "work", ScrapedAt: rg.start.Add(-time.Hour + time.Duration(i)*time.Minute),
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
