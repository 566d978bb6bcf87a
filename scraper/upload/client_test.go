package upload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/claude-usage/widget/shared"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testKey = "test-write-key-0123456789"
	testID  = "d4k2c6p3qf7c73a5ue10"
)

var t0 = time.Date(2026, 11, 28, 13, 50, 0, 0, time.UTC)

func testSnap() shared.Snapshot {
	return shared.Snapshot{Account: "default", ScrapedAt: t0, Source: "claude.ai/settings/usage", Capture: shared.CaptureAPI,
		Meters: []shared.Meter{{ID: shared.MeterSession, Label: "Current session", PercentUsed: 42}}}
}

// step is one scripted server answer.
type step struct {
	status     int
	retryAfter string
	hang       bool // hold the request until the client gives up
	drop       bool // close the connection without an answer
	redirect   string
}

// faultServer plays steps in order, one per request, on 127.0.0.1.
type faultServer struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	steps  []step
	reqs   []*http.Request
	bodies [][]byte
}

func newFaultServer(t *testing.T, steps ...step) *faultServer {
	t.Helper()
	f := &faultServer{t: t, steps: steps}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *faultServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	n := len(f.reqs) + 1
	f.reqs = append(f.reqs, r.Clone(context.Background()))
	f.bodies = append(f.bodies, body)
	var s step
	if n <= len(f.steps) {
		s = f.steps[n-1]
	} else {
		f.t.Errorf("unexpected request %d (script has %d steps)", n, len(f.steps))
		s = step{status: http.StatusTeapot}
	}
	f.mu.Unlock()
	reqID := fmt.Sprintf("req-%d", n)
	w.Header().Set(shared.HeaderRequestID, reqID)
	switch {
	case s.hang:
		<-r.Context().Done()
		return
	case s.drop:
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	case s.redirect != "":
		http.Redirect(w, r, s.redirect, s.status)
		return
	case s.status >= 200 && s.status < 300:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.status)
		if s.status != http.StatusNoContent {
			fmt.Fprintf(w, `{"success":true,"version":%d,"id":"v%d","storedAt":"2026-11-28T13:50:01Z","requestId":%q}`, n, n, reqID)
		}
		return
	}
	if s.retryAfter != "" {
		w.Header().Set("Retry-After", s.retryAfter)
	}
	code := shared.CodeInternal
	switch s.status {
	case 400:
		code = shared.CodeValidationFailed
	case 401:
		code = shared.CodeAuthInvalidKey
	case 404:
		code = shared.CodeNotFound
	case 422:
		code = shared.CodeIdempotencyKeyReused
	case 429:
		code = shared.CodeRateLimited
	case 503:
		code = shared.CodeStorageUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(s.status)
	_ = json.NewEncoder(w).Encode(shared.ErrorBody{ErrorCode: code, Message: "scripted " + fmt.Sprint(s.status), RequestID: reqID, Category: code.Info().Category})
}

func (f *faultServer) requests() ([]*http.Request, [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.reqs...), append([][]byte(nil), f.bodies...)
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

// sleeper records the waits instead of waiting.
type sleeper struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeper) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration{}, s.waits...)
}

func newHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func newClient(t *testing.T, url string) (*Client, *sleeper, *logBuf) {
	t.Helper()
	sl, lb := &sleeper{}, &logBuf{}
	return &Client{
		ServerURL: url, APIKey: testKey, HTTPClient: newHTTPClient(t),
		Logger: slog.New(slog.NewJSONHandler(lb, nil)), Sleep: sl.Sleep, AttemptTimeout: 2 * time.Second,
	}, sl, lb
}

func secs(s ...int) []time.Duration {
	out := []time.Duration{}
	for _, n := range s {
		out = append(out, time.Duration(n)*time.Second)
	}
	return out
}

func TestSendFaultSequences(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		steps          []step
		attemptTimeout time.Duration
		wantAttempts   int
		wantWaits      []time.Duration
		wantCategory   shared.Category // CategoryNone: success
	}{
		{"201 at once", []step{{status: 201}}, 0, 1, secs(), shared.CategoryNone},
		{"503 four times gives up after 10s 20s 40s", []step{{status: 503}, {status: 503}, {status: 503}, {status: 503}}, 0, 4, secs(10, 20, 40), shared.CategoryServer},
		{"503 503 201", []step{{status: 503}, {status: 503}, {status: 201}}, 0, 3, secs(10, 20), shared.CategoryNone},
		{"500 502 504 507 exhausts", []step{{status: 500}, {status: 502}, {status: 504}, {status: 507}}, 0, 4, secs(10, 20, 40), shared.CategoryServer},
		{"401 never retries", []step{{status: 401}}, 0, 1, secs(), shared.CategoryAuth},
		{"400 never retries", []step{{status: 400}}, 0, 1, secs(), shared.CategoryValidation},
		{"422 key reused never retries", []step{{status: 422}}, 0, 1, secs(), shared.CategoryValidation},
		{"404 never retries", []step{{status: 404}}, 0, 1, secs(), shared.CategoryNotFound},
		{"302 redirect is a setup error", []step{{status: 302, redirect: "https://elsewhere.example/"}}, 0, 1, secs(), shared.CategoryNotFound},
		{"429 Retry-After 30 waits 30s", []step{{status: 429, retryAfter: "30"}, {status: 201}}, 0, 2, secs(30), shared.CategoryNone},
		{"429 Retry-After 5 waits the backoff 10s", []step{{status: 429, retryAfter: "5"}, {status: 201}}, 0, 2, secs(10), shared.CategoryNone},
		{"429 Retry-After 30 then backoff wins at 40s", []step{{status: 429, retryAfter: "30"}, {status: 429, retryAfter: "30"}, {status: 429, retryAfter: "30"}, {status: 429, retryAfter: "30"}}, 0, 4, secs(30, 30, 40), shared.CategoryRateLimited},
		{"429 Retry-After beyond the cap leaves it for later", []step{{status: 429, retryAfter: "3600"}}, 0, 1, secs(), shared.CategoryRateLimited},
		{"timeouts four times", []step{{hang: true}, {hang: true}, {hang: true}, {hang: true}}, 50 * time.Millisecond, 4, secs(10, 20, 40), shared.CategoryNetwork},
		{"timeout then 201", []step{{hang: true}, {status: 201}}, 50 * time.Millisecond, 2, secs(10), shared.CategoryNone},
		{"connection dropped mid-request", []step{{drop: true}, {drop: true}, {status: 201}}, 0, 3, secs(10, 20), shared.CategoryNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := newFaultServer(t, tc.steps...)
			c, sl, lb := newClient(t, fs.srv.URL)
			if tc.attemptTimeout > 0 {
				c.AttemptTimeout = tc.attemptTimeout
			}
			res, err := c.Send(context.Background(), testID, testSnap())
			reqs, bodies := fs.requests()
			if got, want := len(reqs), tc.wantAttempts; got != want {
				t.Errorf("server saw %d attempts, want %d", got, want)
			}
			if got, want := sl.got(), tc.wantWaits; !reflect.DeepEqual(got, want) {
				t.Errorf("waits = %v, want %v", got, want)
			}
			if got, want := CategoryOf(err), tc.wantCategory; got != want {
				t.Errorf("category = %q, want %q (err %v)", got, want, err)
			}
			if tc.wantCategory == shared.CategoryNone {
				if err != nil || !res.Success || res.Version != tc.wantAttempts {
					t.Errorf("Send = %+v, %v; want the success of attempt %d", res, err, tc.wantAttempts)
				}
			} else {
				var se *Error
				if !errors.As(err, &se) {
					t.Fatalf("error %v is not a *sync.Error", err)
				}
				if got, want := se.Attempts, tc.wantAttempts; got != want {
					t.Errorf("Error.Attempts = %d, want %d", got, want)
				}
				if !strings.HasPrefix(err.Error(), "sync: ") {
					t.Errorf("error %q does not start with the package subject", err)
				}
			}
			// The same key and body on every attempt, so a replay is one version.
			for i, r := range reqs {
				if got := r.Header.Get(shared.HeaderIdempotencyKey); got != testID {
					t.Errorf("attempt %d Idempotency-Key = %q, want %q", i+1, got, testID)
				}
				if got := r.Header.Get(shared.HeaderAPIKey); got != testKey {
					t.Errorf("attempt %d X-API-Key = %q", i+1, got)
				}
				if got := r.Header.Get("Content-Type"); got != "application/json" {
					t.Errorf("attempt %d Content-Type = %q", i+1, got)
				}
				if !bytes.Equal(bodies[i], bodies[0]) {
					t.Errorf("attempt %d body differs from the first", i+1)
				}
			}
			if len(bodies) > 0 {
				if _, err := shared.DecodeSnapshot(bodies[0]); err != nil {
					t.Errorf("body does not decode strictly: %v", err)
				}
			}
			// One JSON line per attempt with the contract's fields.
			logs := lb.lines(t, "sync attempt")
			if got, want := len(logs), tc.wantAttempts; got != want {
				t.Fatalf("logged %d attempts, want %d:\n%s", got, want, lb)
			}
			for i, l := range logs {
				if l["component"] != "sync" || l["attempt"] != float64(i+1) {
					t.Errorf("log %d = %v", i, l)
				}
				for _, k := range []string{"category", "delayMs", "durationMs", "status", "requestId"} {
					if _, ok := l[k]; !ok {
						t.Errorf("attempt log %d lacks %s: %v", i+1, k, l)
					}
				}
				wantDelay := float64(0)
				if i < len(tc.wantWaits) {
					wantDelay = float64(tc.wantWaits[i].Milliseconds())
				}
				if l["delayMs"] != wantDelay {
					t.Errorf("attempt %d delayMs = %v, want %v", i+1, l["delayMs"], wantDelay)
				}
				if st, _ := l["status"].(float64); st > 0 && l["requestId"] != fmt.Sprintf("req-%d", i+1) {
					t.Errorf("attempt %d requestId = %v, want the response's", i+1, l["requestId"])
				}
			}
			if strings.Contains(lb.String(), testKey) {
				t.Error("the API key appears in the log")
			}
		})
	}
}

func TestSendConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, sl, lb := newClient(t, "http://"+addr)
	_, err = c.Send(context.Background(), testID, testSnap())
	if got, want := CategoryOf(err), shared.CategoryNetwork; got != want {
		t.Fatalf("category = %q, want %q (%v)", got, want, err)
	}
	if got, want := sl.got(), secs(10, 20, 40); !reflect.DeepEqual(got, want) {
		t.Errorf("waits = %v, want %v", got, want)
	}
	if got := len(lb.lines(t, "sync attempt")); got != 4 {
		t.Errorf("logged %d attempts, want 4", got)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q does not say connection refused", err)
	}
}

func TestSendStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	fs := newFaultServer(t, step{status: 503})
	c, _, _ := newClient(t, fs.srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	c.Sleep = func(ctx context.Context, d time.Duration) error {
		cancel() // shutdown arrives during the first wait
		<-ctx.Done()
		return ctx.Err()
	}
	_, err := c.Send(ctx, testID, testSnap())
	var se *Error
	if !errors.As(err, &se) || se.Attempts != 1 || !se.Category.Retryable() {
		t.Fatalf("Send after cancel = %v; want a retryable *Error after 1 attempt", err)
	}
	if reqs, _ := fs.requests(); len(reqs) != 1 {
		t.Errorf("server saw %d requests, want 1", len(reqs))
	}
}

func TestSendVerboseNeverLogsKey(t *testing.T) {
	t.Parallel()
	fs := newFaultServer(t, step{status: 503}, step{status: 201})
	c, _, lb := newClient(t, fs.srv.URL)
	c.Verbose = true
	if _, err := c.Send(context.Background(), testID, testSnap()); err != nil {
		t.Fatal(err)
	}
	reqLogs, respLogs := lb.lines(t, "sync request"), lb.lines(t, "sync response")
	if len(reqLogs) != 2 || len(respLogs) != 2 {
		t.Fatalf("verbose logged %d requests, %d responses; want 2 and 2", len(reqLogs), len(respLogs))
	}
	if h, _ := reqLogs[0]["headers"].(map[string]any); h[http.CanonicalHeaderKey(shared.HeaderAPIKey)] != "[redacted]" {
		t.Errorf("request headers = %v, want the key redacted", reqLogs[0]["headers"])
	}
	if b, _ := reqLogs[0]["body"].(string); !strings.Contains(b, `"percentUsed":42`) {
		t.Errorf("request body not logged: %v", reqLogs[0]["body"])
	}
	if b, _ := respLogs[0]["body"].(string); !strings.Contains(b, "STORAGE_UNAVAILABLE") {
		t.Errorf("response body not logged: %v", respLogs[0]["body"])
	}
	if strings.Contains(lb.String(), testKey) {
		t.Error("the API key appears in the verbose log")
	}
	// Without Verbose none of it.
	fs2 := newFaultServer(t, step{status: 201})
	c2, _, lb2 := newClient(t, fs2.srv.URL)
	if _, err := c2.Send(context.Background(), testID, testSnap()); err != nil {
		t.Fatal(err)
	}
	if n := len(lb2.lines(t, "sync request")); n != 0 {
		t.Errorf("non-verbose logged %d request lines", n)
	}
}

func TestSendBadServerURL(t *testing.T) {
	t.Parallel()
	c, sl, _ := newClient(t, "http://[::1")
	_, err := c.Send(context.Background(), testID, testSnap())
	if got, want := CategoryOf(err), shared.CategoryNotFound; got != want {
		t.Errorf("category = %q, want %q (%v)", got, want, err)
	}
	if len(sl.got()) != 0 {
		t.Error("a malformed URL was retried")
	}
}

func TestReportStatus(t *testing.T) {
	t.Parallel()
	st := shared.ScraperStatus{Account: "default", At: t0, OK: false, Category: shared.ScrapeNotLoggedIn, Message: "Scraper signed out"}
	for _, tc := range []struct {
		name         string
		steps        []step
		wantAttempts int
		wantWaits    []time.Duration
		wantErr      shared.Category
	}{
		{"204", []step{{status: 204}}, 1, secs(), shared.CategoryNone},
		{"503 then 204", []step{{status: 503}, {status: 204}}, 2, secs(2), shared.CategoryNone},
		{"503 twice gives up", []step{{status: 503}, {status: 503}}, 2, secs(2), shared.CategoryServer},
		{"401 once", []step{{status: 401}}, 1, secs(), shared.CategoryAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := newFaultServer(t, tc.steps...)
			c, sl, _ := newClient(t, fs.srv.URL)
			err := c.ReportStatus(context.Background(), st)
			if got := CategoryOf(err); got != tc.wantErr {
				t.Errorf("category = %q, want %q (%v)", got, tc.wantErr, err)
			}
			reqs, bodies := fs.requests()
			if len(reqs) != tc.wantAttempts {
				t.Errorf("attempts = %d, want %d", len(reqs), tc.wantAttempts)
			}
			if got := sl.got(); !reflect.DeepEqual(got, tc.wantWaits) {
				t.Errorf("waits = %v, want %v", got, tc.wantWaits)
			}
			if reqs[0].URL.Path != shared.PathScraperStatus || reqs[0].Header.Get(shared.HeaderIdempotencyKey) != "" {
				t.Errorf("request = %s %s idem %q", reqs[0].Method, reqs[0].URL.Path, reqs[0].Header.Get(shared.HeaderIdempotencyKey))
			}
			var got shared.ScraperStatus
			if err := json.Unmarshal(bodies[0], &got); err != nil || got != st {
				t.Errorf("body = %s (%v), want %+v", bodies[0], err, st)
			}
		})
	}
}
