package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

// fiber runs with Immutable off, so a string taken from a request points
// into a buffer that the next request on the connection overwrites. Whatever
// outlives a request must have been copied: here the idempotency key (kept
// by the store) and the metric labels (kept by the registry) must still be
// intact after many other requests on the same connections.
func TestNothingKeepsRequestBuffers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base := e.listen()
	client := &http.Client{Timeout: 10 * time.Second} // keep-alive: buffers are reused
	do := func(method, path, body string, hdr ...string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	post := func(key, body string) int {
		t.Helper()
		code, _ := do(http.MethodPost, shared.PathUsage, body, "Content-Type", "application/json",
			shared.HeaderAPIKey, testKey, shared.HeaderIdempotencyKey, key)
		return code
	}
	first := snap("default", t0.Add(-time.Minute), 10)
	if code := post("key-AAAAAAAAAAAAAAAAAAAAAAAA", first); code != http.StatusCreated {
		t.Fatalf("first POST = %d", code)
	}
	// Overwrite every buffer with other keys, paths, methods and bodies.
	for i := range 40 {
		if code := post(fmt.Sprintf("key-%024d", i), snap("default", t0.Add(time.Duration(i)*time.Second), float64(i))); code != http.StatusCreated {
			t.Fatalf("POST %d = %d", i, code)
		}
		do(http.MethodGet, "/api/Health/", "")
		do(http.MethodDelete, "/api/claude/console-usage?x=ZZZZZZZZZZZZ", "", "Authorization", "Bearer "+testToken)
		do("PROPFIND", "/api/claude/CONSOLE-USAGE", "")
	}
	if code := post("key-AAAAAAAAAAAAAAAAAAAAAAAA", first); code != http.StatusOK {
		t.Errorf("replay of the first key after other requests = %d, want 200: the stored key changed under the store", code)
	}
	if code := post("key-AAAAAAAAAAAAAAAAAAAAAAAA", snap("default", t0, 99)); code != http.StatusUnprocessableEntity {
		t.Errorf("first key with another body = %d, want 422", code)
	}

	code, metrics := do(http.MethodGet, shared.PathMetrics, "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", code)
	}
	allowedRoute := map[string]bool{"unmatched": true, "widget": true}
	for p := range e.srv.routes {
		allowedRoute[p] = true
	}
	allowedMethod := map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true,
		"DELETE": true, "OPTIONS": true, "other": true}
	seen := 0
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, "usage_http_requests_total{") {
			continue
		}
		seen++
		labels := line[strings.Index(line, "{")+1 : strings.Index(line, "}")]
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			v = strings.Trim(v, `"`)
			switch k {
			case "route":
				if !allowedRoute[v] {
					t.Errorf("route label %q is not a registered route: %s", v, line)
				}
			case "method":
				if !allowedMethod[v] {
					t.Errorf("method label %q is not canonical: %s", v, line)
				}
			}
		}
	}
	if seen == 0 {
		t.Fatalf("no usage_http_requests_total series in /metrics:\n%s", metrics)
	}
}
