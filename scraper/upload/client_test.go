package upload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/claude-usage/widget/internal/testutil"

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
	// raw, when set, is the whole body, sent with ctype: an answer that
	// does not come from a usage-server.
	raw, ctype string
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
	case s.raw != "":
		w.Header().Set("Content-Type", s.ctype)
		w.WriteHeader(s.status)
		_, _ = io.WriteString(w, s.raw)
		return
	case s.status >= 200 && s.status < 300:
		testutil.WriteUsageAnswer(w, s.status, n, reqID)
		return
	}
	if s.retryAfter != "" {
		w.Header().Set("Retry-After", s.retryAfter)
	}
	testutil.WriteUsageAnswer(w, s.status, n, reqID)
}

func (f *faultServer) requests() ([]*http.Request, [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.reqs...), append([][]byte(nil), f.bodies...)
}

// newClient is a Client for a synctest bubble: its waits are go-retry's
// own timers on the bubble's fake clock. The server lives outside the
// bubble; keep-alives are off so that no connection goroutine of the
// bubble sits in a network read while the clock should advance. Call it
// inside the bubble.
func newClient(t *testing.T, url string) (*Client, *testutil.StampTransport, *testutil.LogBuffer) {
	t.Helper()
	st := &testutil.StampTransport{Next: &http.Transport{DisableKeepAlives: true}, Start: time.Now()}
	lb := &testutil.LogBuffer{}
	return &Client{
		ServerURL: url, APIKey: testKey,
		HTTPClient: &http.Client{Transport: st, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		Logger:     slog.New(slog.NewJSONHandler(lb, nil)), AttemptTimeout: 2 * time.Second,
	}, st, lb
}

func TestSendFaultSequences(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		steps        []step
		wantAttempts int
		wantWaits    []time.Duration
		wantCategory shared.Category // CategoryNone: success
	}{
		{"201 at once", []step{{status: 201}}, 1, testutil.Secs(), shared.CategoryNone},
		{"503 four times gives up after 10s 20s 40s", []step{{status: 503}, {status: 503}, {status: 503}, {status: 503}}, 4, testutil.Secs(10, 20, 40), shared.CategoryServer},
		{"503 503 201", []step{{status: 503}, {status: 503}, {status: 201}}, 3, testutil.Secs(10, 20), shared.CategoryNone},
		{"500 502 504 507 exhausts", []step{{status: 500}, {status: 502}, {status: 504}, {status: 507}}, 4, testutil.Secs(10, 20, 40), shared.CategoryServer},
		{"401 never retries", []step{{status: 401}}, 1, testutil.Secs(), shared.CategoryAuth},
		{"400 never retries", []step{{status: 400}}, 1, testutil.Secs(), shared.CategoryValidation},
		{"422 key reused never retries", []step{{status: 422}}, 1, testutil.Secs(), shared.CategoryValidation},
		{"404 never retries", []step{{status: 404}}, 1, testutil.Secs(), shared.CategoryNotFound},

		{"429 Retry-After 30 waits 30s", []step{{status: 429, retryAfter: "30"}, {status: 201}}, 2, testutil.Secs(30), shared.CategoryNone},
		{"429 Retry-After 5 waits the backoff 10s", []step{{status: 429, retryAfter: "5"}, {status: 201}}, 2, testutil.Secs(10), shared.CategoryNone},
		{"429 Retry-After 30 then backoff wins at 40s", []step{{status: 429, retryAfter: "30"}, {status: 429, retryAfter: "30"}, {status: 429, retryAfter: "30"}, {status: 429, retryAfter: "30"}}, 4, testutil.Secs(30, 30, 40), shared.CategoryRateLimited},
		{"429 Retry-After beyond the cap leaves it for later", []step{{status: 429, retryAfter: "3600"}}, 1, testutil.Secs(), shared.CategoryRateLimited},
		{"connection dropped mid-request", []step{{drop: true}, {drop: true}, {status: 201}}, 3, testutil.Secs(10, 20), shared.CategoryNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := newFaultServer(t, tc.steps...)
			synctest.Test(t, func(t *testing.T) {
				c, st, lb := newClient(t, fs.srv.URL)
				start := time.Now()
				res, err := c.Send(context.Background(), testID, testSnap())
				var total time.Duration
				for _, w := range tc.wantWaits {
					total += w
				}
				if got, want := time.Since(start), total; got != want {
					t.Errorf("Send took %v of fake time, want exactly %v", got, want)
				}
				if got, want := st.Gaps(), tc.wantWaits; !reflect.DeepEqual(got, want) {
					t.Errorf("gaps between attempts = %v, want %v", got, want)
				}
				checkSend(t, fs, lb, res, err, tc.wantAttempts, tc.wantWaits, tc.wantCategory)
			})
		})
	}
}

const portal = "<html><head><title>Hotel WiFi</title></head><body>Accept the terms</body></html>"

// Delivered means 200/201 with a usage-server result, and only the
// server's own error body makes a 4xx final: anything else (a captive
// portal, a proxy's page, a wrong --server) is a SERVER failure, retried
// and kept, that says the URL does not answer like a usage-server.
func TestSendForeignAnswersAreServerFailures(t *testing.T) {
	t.Parallel()
	four := func(s step) []step { return []step{s, s, s, s} }
	for _, tc := range []struct {
		name         string
		steps        []step
		wantCategory shared.Category
		wantForeign  bool
	}{
		{"200 HTML from a captive portal", four(step{status: 200, raw: portal, ctype: "text/html"}), shared.CategoryServer, true},
		{"201 JSON without id and version", four(step{status: 201, raw: `{"success":true}`, ctype: "application/json"}), shared.CategoryServer, true},
		{"200 with version 0", four(step{status: 200, raw: `{"success":true,"version":0,"id":"v1"}`, ctype: "application/json"}), shared.CategoryServer, true},
		{"204 on the snapshot path", four(step{status: 204}), shared.CategoryServer, true},
		{"202 accepted", four(step{status: 202, raw: `{"version":1,"id":"v1"}`, ctype: "application/json"}), shared.CategoryServer, true},
		{"302 redirect", four(step{status: 302, redirect: "https://elsewhere.example/"}), shared.CategoryServer, true},
		{"405 HTML from a proxy", four(step{status: 405, raw: "<html>405 Not Allowed</html>", ctype: "text/html"}), shared.CategoryServer, true},
		{"413 HTML from a proxy", four(step{status: 413, raw: "<html>413 Request Entity Too Large</html>", ctype: "text/html"}), shared.CategoryServer, true},
		{"400 JSON of another API", four(step{status: 400, raw: `{"error":"bad request"}`, ctype: "application/json"}), shared.CategoryServer, true},
		{"400 error body with a code outside the set", four(step{status: 400, raw: `{"errorCode":"BAD","message":"x","requestId":"r"}`, ctype: "application/json"}), shared.CategoryServer, true},
		{"401 HTML from a proxy's login", four(step{status: 401, raw: "<html>Sign in</html>", ctype: "text/html"}), shared.CategoryServer, true},
		{"502 HTML from a proxy while the server restarts", four(step{status: 502, raw: "<html>Bad Gateway</html>", ctype: "text/html"}), shared.CategoryServer, false},
		{"the server's own 405 is final", []step{{status: 405}}, shared.CategoryValidation, false},
		{"the server's own 413 is final", []step{{status: 413}}, shared.CategoryValidation, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := newFaultServer(t, tc.steps...)
			synctest.Test(t, func(t *testing.T) {
				c, st, lb := newClient(t, fs.srv.URL)
				_, err := c.Send(context.Background(), testID, testSnap())
				if got, want := CategoryOf(err), tc.wantCategory; got != want {
					t.Fatalf("category = %q, want %q (%v)", got, want, err)
				}
				if got, want := len(st.Gaps())+1, len(tc.steps); got != want {
					t.Errorf("attempts = %d, want %d", got, want)
				}
				var se *Error
				if !errors.As(err, &se) || se.NotUsageServer != tc.wantForeign || errors.Is(err, ErrNotUsageServer) != tc.wantForeign {
					t.Errorf("err = %v (NotUsageServer %v), want NotUsageServer %v", err, se != nil && se.NotUsageServer, tc.wantForeign)
				}
				if tc.wantForeign && !strings.Contains(err.Error(), "does not answer like a usage-server") {
					t.Errorf("error %q does not say the URL is not a usage-server", err)
				}
				if len(testutil.LogRecords(t, lb.String(), "snapshot synced")) != 0 {
					t.Errorf("a foreign answer was logged as synced:\n%s", lb)
				}
			})
		})
	}
}

// checkSend checks what every Send must do, whatever the server answered.
func checkSend(t *testing.T, fs *faultServer, lb *testutil.LogBuffer, res shared.PostResult, err error, wantAttempts int, wantWaits []time.Duration, wantCategory shared.Category) {
	t.Helper()
	reqs, bodies := fs.requests()
	if got, want := len(reqs), wantAttempts; got != want {
		t.Errorf("server saw %d attempts, want %d", got, want)
	}
	if got, want := CategoryOf(err), wantCategory; got != want {
		t.Errorf("category = %q, want %q (err %v)", got, want, err)
	}
	if wantCategory == shared.CategoryNone {
		if err != nil || !res.Success || res.Version != wantAttempts {
			t.Errorf("Send = %+v, %v; want the success of attempt %d", res, err, wantAttempts)
		}
	} else {
		var se *Error
		if !errors.As(err, &se) {
			t.Fatalf("error %v is not an *upload.Error", err)
		}
		if got, want := se.Attempts, wantAttempts; got != want {
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
	logs := testutil.LogRecords(t, lb.String(), "sync attempt")
	if got, want := len(logs), wantAttempts; got != want {
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
		if i < len(wantWaits) {
			wantDelay = float64(wantWaits[i].Milliseconds())
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
}

// An attempt that gets no answer ends at AttemptTimeout and counts as
// NETWORK. The timeout runs on real time: a request waiting on a real
// socket is not a durable block, so a synctest bubble would never reach
// it. The waits between attempts go through the Sleep hook, recorded and
// not waited.
func TestSendAttemptTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		steps        []step
		wantAttempts int
		wantWaits    []time.Duration
		wantCategory shared.Category
	}{
		{"timeouts four times", []step{{hang: true}, {hang: true}, {hang: true}, {hang: true}}, 4, testutil.Secs(10, 20, 40), shared.CategoryNetwork},
		{"timeout then 201", []step{{hang: true}, {status: 201}}, 2, testutil.Secs(10), shared.CategoryNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := newFaultServer(t, tc.steps...)
			c, _, lb := newClient(t, fs.srv.URL)
			c.AttemptTimeout = 50 * time.Millisecond
			var mu sync.Mutex
			var waits []time.Duration
			c.Sleep = func(ctx context.Context, d time.Duration) error {
				mu.Lock()
				waits = append(waits, d)
				mu.Unlock()
				return ctx.Err()
			}
			res, err := c.Send(context.Background(), testID, testSnap())
			mu.Lock()
			if got, want := waits, tc.wantWaits; !reflect.DeepEqual(append([]time.Duration{}, got...), want) {
				t.Errorf("waits = %v, want %v", got, want)
			}
			mu.Unlock()
			checkSend(t, fs, lb, res, err, tc.wantAttempts, tc.wantWaits, tc.wantCategory)
		})
	}
}

func TestSendConnectionRefused(t *testing.T) {
	t.Parallel()
	addr := testutil.FreeAddr(t)
	synctest.Test(t, func(t *testing.T) {
		c, st, lb := newClient(t, "http://"+addr)
		_, err := c.Send(context.Background(), testID, testSnap())
		if got, want := CategoryOf(err), shared.CategoryNetwork; got != want {
			t.Fatalf("category = %q, want %q (%v)", got, want, err)
		}
		if got, want := st.Gaps(), testutil.Secs(10, 20, 40); !reflect.DeepEqual(got, want) {
			t.Errorf("gaps = %v, want %v", got, want)
		}
		if got := len(testutil.LogRecords(t, lb.String(), "sync attempt")); got != 4 {
			t.Errorf("logged %d attempts, want 4", got)
		}
		if !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("error %q does not say connection refused", err)
		}
	})
}

func TestSendVerboseNeverLogsKey(t *testing.T) {
	t.Parallel()
	fs := newFaultServer(t, step{status: 503}, step{status: 201})
	fs2 := newFaultServer(t, step{status: 201})
	synctest.Test(t, func(t *testing.T) {
		c, _, lb := newClient(t, fs.srv.URL)
		c.Verbose = true
		if _, err := c.Send(context.Background(), testID, testSnap()); err != nil {
			t.Fatal(err)
		}
		reqLogs, respLogs := testutil.LogRecords(t, lb.String(), "sync request"), testutil.LogRecords(t, lb.String(), "sync response")
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
		c2, _, lb2 := newClient(t, fs2.srv.URL)
		if _, err := c2.Send(context.Background(), testID, testSnap()); err != nil {
			t.Fatal(err)
		}
		if n := len(testutil.LogRecords(t, lb2.String(), "sync request")); n != 0 {
			t.Errorf("non-verbose logged %d request lines", n)
		}
	})
}

func TestSendBadServerURL(t *testing.T) {
	t.Parallel()
	c, st, _ := newClient(t, "http://[::1")
	_, err := c.Send(context.Background(), testID, testSnap())
	if got, want := CategoryOf(err), shared.CategoryNotFound; got != want {
		t.Errorf("category = %q, want %q (%v)", got, want, err)
	}
	if len(st.Gaps()) != 0 {
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
		wantGaps     []time.Duration
		wantErr      shared.Category
	}{
		{"204", []step{{status: 204}}, 1, testutil.Secs(), shared.CategoryNone},
		{"503 then 204", []step{{status: 503}, {status: 204}}, 2, testutil.Secs(2), shared.CategoryNone},
		{"503 twice gives up", []step{{status: 503}, {status: 503}}, 2, testutil.Secs(2), shared.CategoryServer},
		{"401 once", []step{{status: 401}}, 1, testutil.Secs(), shared.CategoryAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := newFaultServer(t, tc.steps...)
			synctest.Test(t, func(t *testing.T) {
				c, stamps, _ := newClient(t, fs.srv.URL)
				err := c.ReportStatus(context.Background(), st)
				if got := CategoryOf(err); got != tc.wantErr {
					t.Errorf("category = %q, want %q (%v)", got, tc.wantErr, err)
				}
				reqs, bodies := fs.requests()
				if len(reqs) != tc.wantAttempts {
					t.Errorf("attempts = %d, want %d", len(reqs), tc.wantAttempts)
				}
				if got := stamps.Gaps(); !reflect.DeepEqual(got, tc.wantGaps) {
					t.Errorf("gaps = %v, want %v", got, tc.wantGaps)
				}
				if reqs[0].URL.Path != shared.PathScraperStatus || reqs[0].Header.Get(shared.HeaderIdempotencyKey) != "" {
					t.Errorf("request = %s %s idem %q", reqs[0].Method, reqs[0].URL.Path, reqs[0].Header.Get(shared.HeaderIdempotencyKey))
				}
				var got shared.ScraperStatus
				if err := json.Unmarshal(bodies[0], &got); err != nil || got != st {
					t.Errorf("body = %s (%v), want %+v", bodies[0], err, st)
				}
			})
		})
	}
}

// A shutdown during a 40 s wait ends Send at once, without waiting out the
// timer; synctest.Test fails if any goroutine or timer of the bubble is left.
func TestSendCancelDuringWaitLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	fs := newFaultServer(t, step{status: 503}, step{status: 503}, step{status: 503})
	synctest.Test(t, func(t *testing.T) {
		c, st, _ := newClient(t, fs.srv.URL)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := c.Send(ctx, testID, testSnap())
			done <- err
		}()
		time.Sleep(45 * time.Second) // attempts at 0 s, 10 s and 30 s; now in the 40 s wait
		synctest.Wait()
		cancel()
		err := <-done
		if got, want := time.Since(start), 45*time.Second; got != want {
			t.Errorf("Send returned after %v, want %v (at the cancel)", got, want)
		}
		var se *Error
		if !errors.As(err, &se) || se.Attempts != 3 || !se.Category.Retryable() {
			t.Errorf("err = %v; want a retryable *Error after 3 attempts", err)
		}
		if got, want := len(st.Gaps()), 2; got != want {
			t.Errorf("%d gaps, want %d", got, want)
		}
	})
}
