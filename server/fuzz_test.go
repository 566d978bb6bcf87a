package server

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/claude-usage/widget/shared"
)

// FuzzPostUsage: whatever the body, content type and idempotency key, the
// server never answers 5xx and every 4xx carries the error body.
func FuzzPostUsage(f *testing.F) {
	f.Add(snap("default", t0, 42), "application/json", "k1")
	f.Add(`{"account":"../x","meters":[]}`, "application/json", "")
	f.Add(`{"meters":[{"id":"a","label":"b","percentUsed":1e400}]}`, "application/json; charset=utf-8", "a b")
	f.Add(`[`, "text/plain", "\r\nX-Injected: 1")
	f.Add(strings.Repeat("{", 300), "application/json", strings.Repeat("k", 200))
	f.Fuzz(func(t *testing.T, body, contentType, key string) {
		e := newEnv(t)
		hdr := []string{shared.HeaderAPIKey, testKey}
		if ct := strings.Map(headerSafe, contentType); ct != "" {
			hdr = append(hdr, "Content-Type", ct)
		}
		if k := strings.Map(headerSafe, key); k != "" {
			hdr = append(hdr, shared.HeaderIdempotencyKey, k)
		}
		r := e.do(http.MethodPost, shared.PathUsage, body, hdr...)
		checkNoServerError(t, r)
	})
}

// FuzzQuery: whatever the raw query, GET usage and history never answer 5xx.
func FuzzQuery(f *testing.F) {
	for _, q := range []string{"", "version=-1", "version=0", "timestamp=2026-11-28T13:00:00Z", "account=..%2F",
		"since=x&limit=-5", "limit=2001", "version=1&timestamp=x", "%zz", "a=%00"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		e := newEnv(t)
		e.mustPost(snap("default", t0.Add(-60e9), 5))
		// httptest.NewRequest panics on a target it cannot parse; such a
		// query never reaches a server either.
		if strings.IndexFunc(raw, func(r rune) bool { return r <= 0x20 || r >= 0x7f }) >= 0 {
			return // not sendable in a request line
		}
		u := &url.URL{Path: shared.PathUsage, RawQuery: raw}
		if _, err := url.ParseRequestURI(u.String()); err != nil {
			return
		}
		for _, p := range []string{shared.PathUsage, shared.PathHistory} {
			u.Path = p
			checkNoServerError(t, e.get(u.String()))
		}
	})
}

func headerSafe(r rune) rune {
	if r < 0x20 || r == 0x7f || r > 0x7e {
		return -1
	}
	return r
}

func checkNoServerError(t *testing.T, r resp) {
	t.Helper()
	if r.status >= 500 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if r.status >= 400 {
		eb, ok := shared.ParseErrorBody(r.body)
		if !ok || eb.RequestID == "" || eb.RequestID != r.header.Get(shared.HeaderRequestID) {
			t.Fatalf("status %d without a proper error body: %s", r.status, r.body)
		}
	}
}
