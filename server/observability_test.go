package server

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/rs/xid"

	"github.com/claude-usage/widget/internal/logbuf"
	"github.com/claude-usage/widget/shared"
)

func TestRequestIDOnEveryResponse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.RateLimit = 3 }))
	e.srv.App().Get("/test-panic", func(*fiber.Ctx) error { panic("x") })
	first := e.mustPost(snap("default", t0, 1))
	created := e.post(snap("default", t0.Add(time.Second), 1))
	etag := e.get(shared.PathUsage).header.Get("ETag")
	cases := []struct {
		name   string
		r      resp
		status int
	}{
		{"201", created, 201},
		{"415", e.do(http.MethodPost, shared.PathScraperStatus, "x", shared.HeaderAPIKey, testKey), 415},
		{"429", e.post(snap("default", t0.Add(2*time.Second), 1)), 429},
		{"200", e.get(shared.PathUsage), 200},
		{"304", e.get(shared.PathUsage, "If-None-Match", etag), 304},
		{"HEAD health", e.do(http.MethodHead, shared.PathHealth, ""), 200},
		{"401 on POST", e.do(http.MethodPost, shared.PathScraperStatus, `{"at":"2026-11-28T13:50:00Z","ok":true}`, "Content-Type", "application/json", shared.HeaderAPIKey, "x"), 401},
		{"400", e.get(shared.PathUsage + "?version=x"), 400},
		{"401", e.get(shared.PathUsage, "Authorization", "Bearer x"), 401},
		{"404", e.do(http.MethodGet, "/api/x", ""), 404},
		{"405", e.do(http.MethodDelete, shared.PathHealth, ""), 405},
		{"500", e.do(http.MethodGet, "/test-panic", ""), 500},
		{"metrics", e.do(http.MethodGet, shared.PathMetrics, ""), 200},
	}
	seen := map[string]bool{first.RequestID: true}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.r.status != c.status {
				t.Fatalf("status = %d, want %d: %s", c.r.status, c.status, c.r.body)
			}
			rid := c.r.header.Get(shared.HeaderRequestID)
			if _, err := xid.FromString(rid); err != nil {
				t.Fatalf("X-Request-ID %q is not an xid: %v", rid, err)
			}
			if seen[rid] {
				t.Errorf("request id %s reused", rid)
			}
			seen[rid] = true
			if c.r.status >= 400 {
				if eb := c.r.errBody(t); eb.RequestID != rid {
					t.Errorf("body requestId %q != header %q", eb.RequestID, rid)
				}
			}
		})
	}

	// A client's id is kept for correlation only when it is an xid (what
	// the scraper sends); anything else is replaced rather than echoed
	// into headers and logs.
	clientID := xid.New().String()
	if got := e.do(http.MethodGet, shared.PathHealth, "", shared.HeaderRequestID, clientID).header.Get(shared.HeaderRequestID); got != clientID {
		t.Errorf("client xid not kept: %q, want %q", got, clientID)
	}
	for _, bad := range []string{"client-id_1.2:3", "a b", strings.Repeat("x", 65), "x\"}{", clientID[:19], clientID + "0", strings.ToUpper(clientID)} {
		got := e.do(http.MethodGet, shared.PathHealth, "", shared.HeaderRequestID, bad).header.Get(shared.HeaderRequestID)
		if _, err := xid.FromString(got); err != nil || got == bad {
			t.Errorf("client id %q: got %q, want a fresh xid", bad, got)
		}
	}
}

func TestLogsAreJSONWithRequestIDsAndNoKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.Verbose = true }))
	pr := e.mustPost(snap("default", t0, 1))
	bad := e.do(http.MethodPost, shared.PathUsage, snap("default", t0, 2), "Content-Type", "application/json", shared.HeaderAPIKey, "wrong-key-value")
	g := e.get(shared.PathUsage)

	logs := e.logs.String()
	for _, secret := range []string{testKey, testToken, "wrong-key-value"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains the credential %q", secret)
		}
	}
	want := map[string]int{
		pr.RequestID:                         201,
		bad.errBody(t).RequestID:             401,
		g.header.Get(shared.HeaderRequestID): 200,
	}
	got := map[string]int{}
	for _, l := range logLines(t, e.logs.String()) {
		for _, k := range []string{"time", "level", "msg", "component"} {
			if _, ok := l[k]; !ok {
				t.Errorf("log line without %q: %v", k, l)
			}
		}
		if l["msg"] != "request" {
			continue
		}
		rid, _ := l["requestId"].(string)
		status, _ := l["status"].(float64)
		got[rid] = int(status)
		if l["method"] == nil || l["route"] != shared.PathUsage || l["durationMs"] == nil {
			t.Errorf("access line lacks fields: %v", l)
		}
		if l["requestHeaders"] == nil {
			t.Errorf("verbose access line lacks request detail: %v", l)
		}
	}
	for rid, status := range want {
		if got[rid] != status {
			t.Errorf("access log for %s: status %d, want %d", rid, got[rid], status)
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustPost(snap("default", t0, 1))
	e.post(snap("default", t0, 1), shared.HeaderIdempotencyKey, "m1")
	e.post(snap("default", t0, 1), shared.HeaderIdempotencyKey, "m1")
	e.mustPost(snap("work", t0.Add(-time.Minute), 1))
	e.do(http.MethodGet, "/nowhere", "")
	e.clock.Set(t0.Add(90 * time.Second))

	for series, want := range map[string]float64{
		`usage_versions{account="default"}`:                                                     2,
		`usage_versions{account="work"}`:                                                        1,
		`usage_last_snapshot_age_seconds{account="default"}`:                                    90,
		`usage_last_snapshot_age_seconds{account="work"}`:                                       150,
		`usage_idempotent_replays_total`:                                                        1,
		`usage_http_requests_total{code="201",method="POST",route="/api/claude/console-usage"}`: 3,
		`usage_http_requests_total{code="200",method="POST",route="/api/claude/console-usage"}`: 1,
		`usage_http_requests_total{code="404",method="GET",route="unmatched"}`:                  1,
		`usage_store_write_duration_seconds_count`:                                              4,
		`usage_store_breaker_state`:                                                             0,
		`usage_storage_writable`:                                                                1,
		`usage_rate_limited_total`:                                                              0,
	} {
		if got := metricValue(t, e, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}

	p := newEnv(t, withConfig(func(c *Config) { c.MetricsToken = "metrics-secret" }))
	wantError(t, p.do(http.MethodGet, shared.PathMetrics, ""), 401, shared.CodeAuthMissingKey)
	wantError(t, p.do(http.MethodGet, shared.PathMetrics, "", "Authorization", "Bearer nope"), 401, shared.CodeAuthInvalidKey)
	if r := p.do(http.MethodGet, shared.PathMetrics, "", "Authorization", "Bearer metrics-secret"); r.status != 200 || !strings.Contains(string(r.body), "usage_http_requests_total") {
		t.Errorf("metrics with token = %d", r.status)
	}
}

// Log lines lost to a failing stderr are counted where an operator looks:
// a pipe whose reader is gone loses every flushed byte.
func TestLogDroppedIsAMetric(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	lw := logbuf.New(w, time.Hour)
	defer lw.Close()
	e := newEnv(t, withConfig(func(c *Config) { c.LogDropped = lw.Dropped }))
	if got := metricValue(t, e, "usage_log_dropped_bytes_total"); got != 0 {
		t.Fatalf("before any loss: %v, want 0", got)
	}
	line := "a log line nobody will read\n"
	if _, err := lw.Write([]byte(line)); err != nil {
		t.Fatal(err)
	}
	if err := lw.Flush(); err == nil {
		t.Fatal("flushing into a closed pipe succeeded")
	}
	if got, want := metricValue(t, e, "usage_log_dropped_bytes_total"), float64(len(line)); got != want {
		t.Errorf("usage_log_dropped_bytes_total = %v, want %v", got, want)
	}
}
