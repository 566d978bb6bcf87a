package server

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

// TestHostileRequests sends requests an attacker or a broken client would
// send. Each must get its 4xx with the contract's error body (never a 500),
// the server must stay healthy, nothing may be written outside the data
// directory, and no secret may reach the log.
func TestHostileRequests(t *testing.T) {
	e := newEnv(t)
	e.mustPost(snap("default", t0.Add(-time.Minute), 10))
	auth := []string{"Authorization", "Bearer " + testToken}
	postH := []string{"Content-Type", "application/json", shared.HeaderAPIKey, testKey}
	nested := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	huge := `{"account":"default","scrapedAt":"2026-11-28T13:50:00Z","capture":"api","meters":[{"id":"session","label":"` +
		strings.Repeat("x", 70<<10) + `","percentUsed":1}]}`
	withPct := func(p string) string {
		return `{"account":"default","scrapedAt":"2026-11-28T13:40:00Z","capture":"api","meters":[{"id":"session","label":"S","percentUsed":` + p + `}]}`
	}
	withAccount := func(a string) string {
		return `{"account":"` + a + `","scrapedAt":"2026-11-28T13:40:00Z","capture":"api","meters":[{"id":"session","label":"S","percentUsed":1}]}`
	}
	tests := []struct {
		name   string
		method string
		target string
		body   string
		hdr    []string
		status int
		code   shared.Code
	}{
		{"traversal in account query", "GET", shared.PathUsage + "?account=..%2F..%2Fetc", "", auth, 400, shared.CodeInvalidQuery},
		{"encoded slash account", "GET", shared.PathUsage + "?account=a%2Fb", "", auth, 400, shared.CodeInvalidQuery},
		{"NUL in account", "GET", shared.PathUsage + "?account=a%00b", "", auth, 400, shared.CodeInvalidQuery},
		{"dot account", "GET", shared.PathUsage + "?account=.", "", auth, 400, shared.CodeInvalidQuery},
		{"very long account", "GET", shared.PathUsage + "?account=" + strings.Repeat("a", 500), "", auth, 400, shared.CodeInvalidQuery},
		{"unicode account", "GET", shared.PathUsage + "?account=%C3%A9t%C3%A9", "", auth, 400, shared.CodeInvalidQuery},
		{"traversal in history account", "GET", shared.PathHistory + "?account=..", "", auth, 400, shared.CodeInvalidQuery},
		{"sql in version", "GET", shared.PathUsage + "?version=1%27%20OR%201%3D1", "", auth, 400, shared.CodeInvalidQuery},
		{"huge version", "GET", shared.PathUsage + "?version=99999999999999999999", "", auth, 400, shared.CodeInvalidQuery},
		{"huge negative version", "GET", shared.PathUsage + "?version=-9999999999", "", auth, 404, shared.CodeVersionNotFound},
		{"zero version", "GET", shared.PathUsage + "?version=0", "", auth, 400, shared.CodeInvalidQuery},
		{"float version", "GET", shared.PathUsage + "?version=1.5", "", auth, 400, shared.CodeInvalidQuery},
		{"malformed timestamp", "GET", shared.PathUsage + "?timestamp=yesterday", "", auth, 400, shared.CodeInvalidQuery},
		{"timestamp with script", "GET", shared.PathUsage + "?timestamp=%3Cscript%3E", "", auth, 400, shared.CodeInvalidQuery},
		{"version and timestamp", "GET", shared.PathUsage + "?version=1&timestamp=2026-11-28T13:00:00Z", "", auth, 400, shared.CodeInvalidQuery},
		{"repeated parameter", "GET", shared.PathUsage + "?version=1&version=2", "", auth, 400, shared.CodeInvalidQuery},
		{"malformed since", "GET", shared.PathHistory + "?since=..%2F..", "", auth, 400, shared.CodeInvalidQuery},
		{"negative limit", "GET", shared.PathHistory + "?limit=-1", "", auth, 400, shared.CodeInvalidQuery},
		{"huge limit", "GET", shared.PathHistory + "?limit=100000", "", auth, 400, shared.CodeInvalidQuery},
		{"unknown parameter", "GET", shared.PathUsage + "?debug=1", "", auth, 400, shared.CodeInvalidQuery},
		{"no read token", "GET", shared.PathUsage, "", nil, 401, shared.CodeAuthMissingKey},
		{"wrong read token", "GET", shared.PathUsage, "", []string{"Authorization", "Bearer nope"}, 401, shared.CodeAuthInvalidKey},
		{"token in query string", "GET", shared.PathUsage + "?token=" + testToken, "", nil, 400, shared.CodeInvalidQuery},
		{"write key in query string", "POST", shared.PathUsage + "?api_key=" + testKey, snap("default", t0, 1), []string{"Content-Type", "application/json"}, 400, shared.CodeInvalidQuery},
		{"token in history query", "GET", shared.PathHistory + "?Access_Token=" + testToken, "", nil, 400, shared.CodeInvalidQuery},
		{"key in scraper status query", "POST", shared.PathScraperStatus + "?key=" + testKey, `{"at":"2026-11-28T13:50:00Z","ok":true}`, []string{"Content-Type", "application/json"}, 400, shared.CodeInvalidQuery},
		{"oversized key", "POST", shared.PathUsage, snap("default", t0, 1), []string{"Content-Type", "application/json", shared.HeaderAPIKey, strings.Repeat("k", 3<<10)}, 401, shared.CodeAuthInvalidKey},
		{"deeply nested body", "POST", shared.PathUsage, nested, postH, 400, shared.CodeValidationFailed},
		{"invalid UTF-8", "POST", shared.PathUsage, "{\"account\":\"\xff\xfe\"}", postH, 400, shared.CodeValidationFailed},
		{"NaN", "POST", shared.PathUsage, withPct("NaN"), postH, 400, shared.CodeValidationFailed},
		{"Infinity", "POST", shared.PathUsage, withPct("Infinity"), postH, 400, shared.CodeValidationFailed},
		{"1e309", "POST", shared.PathUsage, withPct("1e309"), postH, 400, shared.CodeValidationFailed},
		{"traversal account in body", "POST", shared.PathUsage, withAccount("../../etc"), postH, 400, shared.CodeValidationFailed},
		{"slash account in body", "POST", shared.PathUsage, withAccount("a/b"), postH, 400, shared.CodeValidationFailed},
		{"text/plain body", "POST", shared.PathUsage, snap("default", t0, 1), []string{"Content-Type", "text/plain", shared.HeaderAPIKey, testKey}, 415, shared.CodeUnsupportedMediaType},
		{"form body", "POST", shared.PathUsage, "a=b", []string{"Content-Type", "application/x-www-form-urlencoded", shared.HeaderAPIKey, testKey}, 415, shared.CodeUnsupportedMediaType},
		{"bad idempotency key", "POST", shared.PathUsage, snap("default", t0, 1), append(append([]string{}, postH...), shared.HeaderIdempotencyKey, "a b/../c"), 400, shared.CodeValidationFailed},
		{"TRACE on API", "TRACE", shared.PathUsage, "", auth, 405, shared.CodeMethodNotAllowed},
		{"DELETE on API", "DELETE", shared.PathUsage, "", auth, 405, shared.CodeMethodNotAllowed},
		{"unknown API path traversal", "GET", "/api/..%2F..%2Fetc%2Fpasswd", "", auth, 404, shared.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.target, tt.body, tt.hdr...)
			if r.status >= 500 {
				t.Fatalf("status %d (a 5xx) for hostile input: %s", r.status, r.body)
			}
			wantError(t, r, tt.status, tt.code)
		})
	}

	// fiber's body limit acts while reading the request, which app.Test
	// cannot do; a real listener can.
	base := e.listen()
	wantError(t, send(t, http.MethodPost, base+shared.PathUsage, huge, postH...), http.StatusRequestEntityTooLarge, shared.CodePayloadTooLarge)

	if r := e.do(http.MethodGet, shared.PathHealth, ""); r.status != http.StatusOK {
		t.Errorf("health after hostile requests = %d %s", r.status, r.body)
	}
	// Only the store's own layout exists under the data dir, and nothing
	// named after hostile input.
	_ = filepath.WalkDir(e.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if n := d.Name(); strings.Contains(n, "etc") || strings.Contains(n, "..") {
			t.Errorf("unexpected file from hostile input: %s", p)
		}
		return nil
	})
	logs := e.logs.String()
	for _, secret := range []string{testKey, testToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret appears in the log")
		}
	}
}
