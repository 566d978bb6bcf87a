package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

const (
	testKey   = "write-key-0123456789abcdef"
	testToken = "read-token-0123456789abcdef"
)

// t0 is the fake clock's start; snapshots are scraped around it.
var t0 = time.Date(2026, 11, 28, 13, 50, 0, 0, time.UTC)

// fakeClock is the injected clock: tests move it, nothing sleeps.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// logLines parses every line of a JSON log; a line that is not JSON
// fails t.
func logLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if l == "" || !strings.HasPrefix(l, "{") && strings.HasPrefix(l, "listening on ") {
			continue // the address line on stdout, not a log line
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

type env struct {
	t     *testing.T
	dir   string
	clock *fakeClock
	logs  *testutil.LogBuffer
	log   *slog.Logger
	st    store.Store
	srv   *Server
}

type envOption func(*env, *Config)

func withConfig(f func(*Config)) envOption { return func(_ *env, c *Config) { f(c) } }

// wrapStore lets a test put a fault-injecting wrapper around the real store.
func wrapStore(f func(store.Store) store.Store) envOption {
	return func(e *env, _ *Config) { e.st = f(e.st) }
}

// newEnv opens a real file store in a temp dir and a server around it.
func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), clock: &fakeClock{now: t0}, logs: &testutil.LogBuffer{}}
	e.log = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.st = openStore(t, e.dir, e.clock, e.log)
	cfg := Config{
		APIKey:    testKey,
		ReadToken: testToken,
		RateLimit: 1000,
		Now:       e.clock.Now,
	}
	for _, o := range opts {
		o(e, &cfg)
	}
	srv, err := New(cfg, e.st, e.log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.srv = srv
	t.Cleanup(func() { _ = srv.Close() })
	return e
}

func openStore(t *testing.T, dir string, _ *fakeClock, log *slog.Logger) *store.FileStore {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{
		Dir: dir, RetentionVersions: 100, RetentionDays: 7, Logger: log,
	})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) errBody(t *testing.T) shared.ErrorBody {
	t.Helper()
	eb, ok := shared.ParseErrorBody(r.body)
	if !ok {
		t.Fatalf("status %d: body is not an error body: %s", r.status, r.body)
	}
	return eb
}

func (r resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("status %d: decoding %s: %v", r.status, r.body, err)
	}
}

// do sends one request through the real fiber app.
func (e *env) do(method, target string, body string, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.srv.App().Test(req, -1)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, target, err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) post(body string, hdr ...string) resp {
	e.t.Helper()
	h := append([]string{"Content-Type", "application/json", shared.HeaderAPIKey, testKey}, hdr...)
	return e.do(http.MethodPost, shared.PathUsage, body, h...)
}

func (e *env) get(target string, hdr ...string) resp {
	e.t.Helper()
	h := append([]string{"Authorization", "Bearer " + testToken}, hdr...)
	return e.do(http.MethodGet, target, "", h...)
}

// mustPost stores a snapshot and fails unless it was created.
func (e *env) mustPost(body string) shared.PostResult {
	e.t.Helper()
	r := e.post(body)
	if r.status != http.StatusCreated {
		e.t.Fatalf("POST = %d %s, want 201", r.status, r.body)
	}
	var pr shared.PostResult
	r.decode(e.t, &pr)
	return pr
}

// snap renders a valid snapshot body scraped at `at` with the session
// meter at pct percent.
func snap(account string, at time.Time, pct float64) string {
	return fmt.Sprintf(`{"account":%q,"scrapedAt":%q,"source":"claude.ai/settings/usage","capture":"api",
"meters":[{"id":"session","label":"Current session","percentUsed":%g,"resetsAt":"2026-11-28T16:00:00Z"},
{"id":"weekly_all","label":"All models","percentUsed":18}],"partial":false}`, account, at.UTC().Format(time.RFC3339), pct)
}

func wantError(t *testing.T, r resp, status int, code shared.Code) shared.ErrorBody {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	eb := r.errBody(t)
	if eb.ErrorCode != code {
		t.Fatalf("errorCode = %s, want %s; body %s", eb.ErrorCode, code, r.body)
	}
	if got := r.header.Get(shared.HeaderRequestID); got == "" || got != eb.RequestID {
		t.Errorf("X-Request-ID %q != body requestId %q", got, eb.RequestID)
	}
	if eb.Category != code.Info().Category || eb.Suggestion == "" || eb.Message == "" || eb.Timestamp.IsZero() {
		t.Errorf("incomplete error body: %+v", eb)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	return eb
}

type storeT = store.Store

// metricValue reads one series from GET /metrics, e.g.
// `usage_versions{account="default"}`; a missing series fails t.
func metricValue(t *testing.T, e *env, series string, hdr ...string) float64 {
	t.Helper()
	r := e.do(http.MethodGet, shared.PathMetrics, "", hdr...)
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", r.status, r.body)
	}
	for _, l := range strings.Split(string(r.body), "\n") {
		if rest, ok := strings.CutPrefix(l, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("metric line %q: %v", l, err)
			}
			return v
		}
	}
	t.Fatalf("series %s not in /metrics:\n%s", series, r.body)
	return 0
}

// listen serves the app on a real loopback socket, for what app.Test
// cannot show (fasthttp rejects an oversize body before app.Test sees a
// response), and returns the base URL.
func (e *env) listen() string {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.srv.App().Listener(ln)
	}()
	e.t.Cleanup(func() {
		_ = e.srv.App().ShutdownWithTimeout(5 * time.Second)
		<-done
	})
	return "http://" + ln.Addr().String()
}

// send makes a real HTTP request.
func send(t *testing.T, method, url, body string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// sendTooLarge POSTs a body over the limit the way a client that does not
// wait for the answer does, but sends only its head and first KiB: the
// server refuses it from Content-Length and closes the connection, and a
// client still writing the rest would get a reset instead of the 413 (seen
// as a flaky test on a busy machine with net/http's client).
func sendTooLarge(t *testing.T, url, body string, hdr ...string) resp {
	t.Helper()
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var head strings.Builder
	fmt.Fprintf(&head, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", u.RequestURI(), u.Host, len(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		fmt.Fprintf(&head, "%s: %s\r\n", hdr[i], hdr[i+1])
	}
	head.WriteString("\r\n")
	if _, err := io.WriteString(conn, head.String()+body[:1024]); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to a too large body: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the body of the answer: %v", err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}
