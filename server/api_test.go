package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/claude-usage/widget/shared"
)

func TestPostThenGetLatest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.clock.Set(t0.Add(3 * time.Minute))
	r := e.post(snap("default", t0, 42))
	if got, want := r.status, http.StatusCreated; got != want {
		t.Fatalf("POST status = %d, want %d: %s", got, want, r.body)
	}
	var pr shared.PostResult
	r.decode(t, &pr)
	if !pr.Success || pr.Version != 1 || pr.ID == "" || pr.StoredAt.IsZero() {
		t.Errorf("PostResult = %+v", pr)
	}
	if got, want := pr.RequestID, r.header.Get(shared.HeaderRequestID); got == "" || got != want {
		t.Errorf("requestId %q, X-Request-ID %q", got, want)
	}

	g := e.get(shared.PathUsage)
	if got, want := g.status, http.StatusOK; got != want {
		t.Fatalf("GET status = %d, want %d: %s", got, want, g.body)
	}
	var u shared.UsageResponse
	g.decode(t, &u)
	if got, want := u.AgeSeconds, int64(180); got != want {
		t.Errorf("ageSeconds = %d, want %d", got, want)
	}
	if u.IsStale {
		t.Error("isStale = true for 3 min old data")
	}
	if got, want := u.VersionInfo, (shared.VersionInfo{Current: 1, Total: 1, ID: pr.ID, StoredAt: pr.StoredAt}); !got.StoredAt.Equal(want.StoredAt) || got.ID != want.ID || got.Current != 1 || got.Total != 1 {
		t.Errorf("versionInfo = %+v, want %+v", got, want)
	}
	if got, want := len(u.Meters), 2; got != want {
		t.Fatalf("meters = %d, want %d", got, want)
	}
	if m := u.Meters[0]; m.ID != "session" || m.PercentUsed != 42 || m.ResetsAt == nil {
		t.Errorf("meter 0 = %+v", m)
	}
	if got, want := strings.Join(u.Accounts, ","), "default"; got != want {
		t.Errorf("accounts = %q, want %q", got, want)
	}
	if !u.ScrapedAt.Equal(t0) || u.Account != "default" || u.Capture != "api" {
		t.Errorf("snapshot fields = %+v", u.Snapshot)
	}
}

func TestStaleness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		age   time.Duration
		stale bool
	}{
		{"fresh", 9*time.Minute + 59*time.Second, false},
		{"exactly 10 min", 10 * time.Minute, true},
		{"old", 3 * time.Hour, true},
		{"scraped slightly ahead of server clock", -2 * time.Minute, false},
	}
	e := newEnv(t)
	e.clock.Set(t0.Add(5 * time.Minute)) // allow the "ahead" case to be stored
	e.mustPost(snap("default", t0, 1))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Set(t0.Add(tt.age))
			var u shared.UsageResponse
			e.get(shared.PathUsage).decode(t, &u)
			if got, want := u.IsStale, tt.stale; got != want {
				t.Errorf("isStale = %v, want %v", got, want)
			}
			if got, want := u.AgeSeconds, max(int64(tt.age/time.Second), 0); got != want {
				t.Errorf("ageSeconds = %d, want %d", got, want)
			}
		})
	}
}

func TestNoData(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	eb := wantError(t, e.get(shared.PathUsage), http.StatusNotFound, shared.CodeNoData)
	if !strings.Contains(eb.Suggestion, "scraper") {
		t.Errorf("suggestion %q does not say how to start the scraper", eb.Suggestion)
	}
	wantError(t, e.get(shared.PathHistory), http.StatusNotFound, shared.CodeNoData)
}

func TestWriteAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := snap("default", t0, 1)
	tests := []struct {
		name string
		path string
		body string
		hdr  []string
		code shared.Code
	}{
		{"usage missing key", shared.PathUsage, body, nil, shared.CodeAuthMissingKey},
		{"usage wrong key", shared.PathUsage, body, []string{shared.HeaderAPIKey, "nope"}, shared.CodeAuthInvalidKey},
		{"usage key prefix", shared.PathUsage, body, []string{shared.HeaderAPIKey, testKey[:10]}, shared.CodeAuthInvalidKey},
		{"usage read token is not a write key", shared.PathUsage, body, []string{"Authorization", "Bearer " + testToken}, shared.CodeAuthMissingKey},
		{"status missing key", shared.PathScraperStatus, `{"at":"2026-11-28T13:50:00Z","ok":true}`, nil, shared.CodeAuthMissingKey},
		{"status wrong key", shared.PathScraperStatus, `{"at":"2026-11-28T13:50:00Z","ok":true}`, []string{shared.HeaderAPIKey, "x"}, shared.CodeAuthInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := append([]string{"Content-Type", "application/json"}, tt.hdr...)
			wantError(t, e.do(http.MethodPost, tt.path, tt.body, hdr...), http.StatusUnauthorized, tt.code)
		})
	}
	if got := e.st.Count("default"); got != 0 {
		t.Errorf("unauthorised POSTs stored %d versions", got)
	}
}

func TestReadAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustPost(snap("default", t0, 1))
	tests := []struct {
		name   string
		target string
		hdr    []string
		status int
		code   shared.Code
	}{
		{"no token", shared.PathUsage, nil, 401, shared.CodeAuthMissingKey},
		{"wrong token", shared.PathUsage, []string{"Authorization", "Bearer wrong"}, 401, shared.CodeAuthInvalidKey},
		{"basic auth is not a bearer", shared.PathUsage, []string{"Authorization", "Basic " + testToken}, 401, shared.CodeAuthMissingKey},
		{"token in query only", shared.PathUsage + "?token=" + testToken, nil, 400, shared.CodeInvalidQuery},
		{"history without token", shared.PathHistory, nil, 401, shared.CodeAuthMissingKey},
		{"wrong write key", shared.PathUsage, []string{shared.HeaderAPIKey, "nope"}, 401, shared.CodeAuthInvalidKey},
		{"token in header and query", shared.PathUsage + "?access_token=x", []string{"Authorization", "Bearer " + testToken}, 400, shared.CodeInvalidQuery},
		{"bearer ok", shared.PathUsage, []string{"Authorization", "Bearer " + testToken}, 200, ""},
		{"bearer case-insensitive scheme", shared.PathUsage, []string{"Authorization", "bearer " + testToken}, 200, ""},
		{"write key may read", shared.PathUsage, []string{shared.HeaderAPIKey, testKey}, 200, ""},
		{"history ok", shared.PathHistory, []string{"Authorization", "Bearer " + testToken}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(http.MethodGet, tt.target, "", tt.hdr...)
			if tt.code == "" {
				if r.status != tt.status {
					t.Fatalf("status = %d, want %d: %s", r.status, tt.status, r.body)
				}
				return
			}
			wantError(t, r, tt.status, tt.code)
			if tt.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestPublicRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.ReadToken, c.PublicRead = "", true }))
	e.mustPost(snap("default", t0, 1))
	if r := e.do(http.MethodGet, shared.PathUsage, ""); r.status != http.StatusOK {
		t.Errorf("public GET = %d: %s", r.status, r.body)
	}
	if r := e.do(http.MethodGet, shared.PathHistory, ""); r.status != http.StatusOK {
		t.Errorf("public history = %d: %s", r.status, r.body)
	}
	// Writes still need the key.
	wantError(t, e.do(http.MethodPost, shared.PathUsage, snap("default", t0, 2), "Content-Type", "application/json"),
		http.StatusUnauthorized, shared.CodeAuthMissingKey)
}

func TestNewRefusesWithoutKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := New(Config{ReadToken: "x"}, e.st, nil); err == nil {
		t.Error("New without a write key succeeded")
	}
	if _, err := New(Config{APIKey: "x"}, e.st, nil); err == nil {
		t.Error("New without read token and without public read succeeded")
	}
}

func TestUnsupportedMediaType(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := snap("default", t0, 1)
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "json"} {
		t.Run(ct, func(t *testing.T) {
			hdr := []string{shared.HeaderAPIKey, testKey}
			if ct != "" {
				hdr = append(hdr, "Content-Type", ct)
			}
			wantError(t, e.do(http.MethodPost, shared.PathUsage, body, hdr...), http.StatusUnsupportedMediaType, shared.CodeUnsupportedMediaType)
		})
	}
	r := e.do(http.MethodPost, shared.PathUsage, body, shared.HeaderAPIKey, testKey, "Content-Type", "application/json; charset=UTF-8")
	if r.status != http.StatusCreated {
		t.Errorf("application/json; charset=UTF-8 = %d: %s", r.status, r.body)
	}
}

func TestPayloadTooLarge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.listen() + shared.PathUsage
	big := `{"source":"` + strings.Repeat("x", shared.MaxBodyBytes) + `"}`
	r := sendTooLarge(t, url, big, "Content-Type", "application/json", shared.HeaderAPIKey, testKey)
	eb := wantError(t, r, http.StatusRequestEntityTooLarge, shared.CodePayloadTooLarge)
	if !strings.Contains(eb.Message, "64 KiB") {
		t.Errorf("message %q does not name the limit", eb.Message)
	}
	if got := r.header.Get("Content-Security-Policy"); got != e.srv.csp {
		t.Errorf("413 without security headers: CSP %q", got)
	}
	found := false
	for _, l := range logLines(t, e.logs.String()) {
		if l["msg"] == "request" && l["requestId"] == eb.RequestID && l["status"] == float64(413) {
			found = true
		}
	}
	if !found {
		t.Error("the 413 has no access log line with its request id")
	}
	// Just under the limit is parsed (and then fails validation on its
	// content, not on its size).
	under := `{"source":"` + strings.Repeat("x", shared.MaxBodyBytes-100) + `"}`
	wantError(t, e.post(under), http.StatusBadRequest, shared.CodeValidationFailed)
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := snap("default", t0, 42)
	key := "cvq2l3k7a1b2c3d4e5f6"
	first := e.post(body, shared.HeaderIdempotencyKey, key)
	if first.status != http.StatusCreated {
		t.Fatalf("first POST = %d: %s", first.status, first.body)
	}
	var p1 shared.PostResult
	first.decode(t, &p1)
	if first.header.Get(shared.HeaderIdempotentReplayed) != "" {
		t.Error("first POST marked as replayed")
	}

	t.Run("replay", func(t *testing.T) {
		// The same snapshot with other formatting and field order is the
		// same body: the hash is over the canonical encoding.
		reformatted := fmt.Sprintf(`{ "meters": [{"label":"Current session","id":"session","percentUsed":42.0,"resetsAt":"2026-11-28T17:00:00+01:00"},{"id":"weekly_all","label":"All models","percentUsed":18}],
 "scrapedAt": %q, "account":"default","capture":"api","source":"claude.ai/settings/usage","partial":false}`, t0.Format(time.RFC3339))
		for _, b := range []string{body, reformatted} {
			r := e.post(b, shared.HeaderIdempotencyKey, key)
			if r.status != http.StatusOK {
				t.Fatalf("replay = %d: %s", r.status, r.body)
			}
			if got := r.header.Get(shared.HeaderIdempotentReplayed); got != "true" {
				t.Errorf("Idempotent-Replayed = %q, want true", got)
			}
			var p shared.PostResult
			r.decode(t, &p)
			if p.ID != p1.ID || p.Version != p1.Version || !p.StoredAt.Equal(p1.StoredAt) {
				t.Errorf("replay result %+v, want original %+v", p, p1)
			}
		}
		if got, want := e.st.Count("default"), 1; got != want {
			t.Errorf("versions after replays = %d, want %d", got, want)
		}
	})
	t.Run("reuse with other body", func(t *testing.T) {
		eb := wantError(t, e.post(snap("default", t0, 43), shared.HeaderIdempotencyKey, key),
			http.StatusUnprocessableEntity, shared.CodeIdempotencyKeyReused)
		if eb.Category != shared.CategoryValidation {
			t.Errorf("category = %s", eb.Category)
		}
	})
	t.Run("bad key shape", func(t *testing.T) {
		for _, k := range []string{"has space", strings.Repeat("k", 129), "semi;colon", "ü"} {
			eb := wantError(t, e.post(body, shared.HeaderIdempotencyKey, k), http.StatusBadRequest, shared.CodeValidationFailed)
			if eb.Field != shared.HeaderIdempotencyKey {
				t.Errorf("key %q: field = %q", k, eb.Field)
			}
		}
		if r := e.post(snap("default", t0.Add(time.Minute), 1), shared.HeaderIdempotencyKey, strings.Repeat("k", 128)); r.status != http.StatusCreated {
			t.Errorf("128-char key = %d: %s", r.status, r.body)
		}
	})
}

func TestIdempotentReplayAcrossReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clock := &fakeClock{now: t0}
	body := snap("default", t0, 42)
	key := "snapshot-xid-1"
	cfg := Config{APIKey: testKey, ReadToken: testToken, Now: clock.Now}

	st1 := openStore(t, dir, clock, slog.New(slog.DiscardHandler))
	srv1, err := New(cfg, st1, nil)
	if err != nil {
		t.Fatal(err)
	}
	e1 := &env{t: t, srv: srv1, st: st1}
	var p1 shared.PostResult
	r := e1.post(body, shared.HeaderIdempotencyKey, key)
	if r.status != http.StatusCreated {
		t.Fatalf("POST = %d: %s", r.status, r.body)
	}
	r.decode(t, &p1)
	srv1.Close()
	if err := st1.Close(); err != nil {
		t.Fatalf("closing the store: %v", err)
	}

	st2 := openStore(t, dir, clock, slog.New(slog.DiscardHandler))
	srv2, err := New(cfg, st2, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv2.Close() })
	e2 := &env{t: t, srv: srv2, st: st2}
	r = e2.post(body, shared.HeaderIdempotencyKey, key)
	if r.status != http.StatusOK || r.header.Get(shared.HeaderIdempotentReplayed) != "true" {
		t.Fatalf("replay after reopen = %d (replayed %q): %s", r.status, r.header.Get(shared.HeaderIdempotentReplayed), r.body)
	}
	var p2 shared.PostResult
	r.decode(t, &p2)
	if p2.ID != p1.ID || p2.Version != p1.Version {
		t.Errorf("replay after reopen = %+v, want %+v", p2, p1)
	}
	wantError(t, e2.post(snap("default", t0, 7), shared.HeaderIdempotencyKey, key), http.StatusUnprocessableEntity, shared.CodeIdempotencyKeyReused)
	if got, want := st2.Count("default"), 1; got != want {
		t.Errorf("versions = %d, want %d", got, want)
	}
}

// threeVersions stores snapshots scraped at t0-20m, t0-10m and t0 (sent out
// of order: a late outbox delivery must take its place in history).
func threeVersions(t *testing.T, e *env) (ids [3]string) {
	t.Helper()
	order := []int{0, 2, 1}
	for _, i := range order {
		pr := e.mustPost(snap("default", t0.Add(time.Duration(i-2)*10*time.Minute), float64(10*(i+1))))
		ids[i] = pr.ID
	}
	return ids
}

func TestVersionQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := threeVersions(t, e)
	tests := []struct {
		q       string
		wantIdx int // index into ids; -1 for an error
		code    shared.Code
	}{
		{"version=1", 0, ""},
		{"version=2", 1, ""},
		{"version=3", 2, ""},
		{"version=-1", 2, ""},
		{"version=-2", 1, ""},
		{"version=-3", 0, ""},
		{"", 2, ""},
		{"version=4", -1, shared.CodeVersionNotFound},
		{"version=-4", -1, shared.CodeVersionNotFound},
		{"version=0", -1, shared.CodeInvalidQuery},
		{"version=abc", -1, shared.CodeInvalidQuery},
		{"version=1.5", -1, shared.CodeInvalidQuery},
		{"version=", -1, shared.CodeInvalidQuery},
		{"version=1&version=2", -1, shared.CodeInvalidQuery},
		{"version=1&timestamp=2026-11-28T13:50:00Z", -1, shared.CodeInvalidQuery},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			r := e.get(shared.PathUsage + "?" + tt.q)
			if tt.code != "" {
				status := tt.code.Status()
				eb := wantError(t, r, status, tt.code)
				if tt.code == shared.CodeVersionNotFound && !(strings.Contains(eb.Message, "1") && strings.Contains(eb.Message, "3")) {
					t.Errorf("message %q does not give the valid range 1..3", eb.Message)
				}
				if tt.code == shared.CodeInvalidQuery && eb.Field != "version" {
					t.Errorf("field = %q, want version", eb.Field)
				}
				return
			}
			if r.status != http.StatusOK {
				t.Fatalf("status = %d: %s", r.status, r.body)
			}
			var u shared.UsageResponse
			r.decode(t, &u)
			if got, want := u.VersionInfo.ID, ids[tt.wantIdx]; got != want {
				t.Errorf("id = %s, want %s (version %d)", got, want, tt.wantIdx+1)
			}
			if got, want := u.VersionInfo.Current, tt.wantIdx+1; got != want {
				t.Errorf("current = %d, want %d", got, want)
			}
			if got, want := u.VersionInfo.Total, 3; got != want {
				t.Errorf("total = %d, want %d", got, want)
			}
		})
	}
}

func TestTimestampQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := threeVersions(t, e) // scraped at t0-20m, t0-10m, t0
	tests := []struct {
		name    string
		ts      time.Time
		wantIdx int
		diff    int64
	}{
		{"before all", t0.Add(-3 * time.Hour), 0, int64((2*time.Hour + 40*time.Minute) / time.Second)},
		{"after all", t0.Add(90 * time.Second), 2, -90},
		{"exact middle", t0.Add(-10 * time.Minute), 1, 0},
		{"between 1 and 2, nearer 1", t0.Add(-16 * time.Minute), 0, -240},
		{"between 1 and 2, nearer 2", t0.Add(-14 * time.Minute), 1, 240},
		{"between 2 and 3, nearer 3", t0.Add(-4 * time.Minute), 2, 240},
		{"tie goes to the older", t0.Add(-15 * time.Minute), 0, -300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get(shared.PathUsage + "?timestamp=" + tt.ts.Format(time.RFC3339))
			if r.status != http.StatusOK {
				t.Fatalf("status = %d: %s", r.status, r.body)
			}
			var u shared.UsageResponse
			r.decode(t, &u)
			if got, want := u.VersionInfo.ID, ids[tt.wantIdx]; got != want {
				t.Errorf("id = %s, want version %d", got, tt.wantIdx+1)
			}
			if u.TimeDiffSeconds == nil {
				t.Fatal("timeDiffSeconds missing")
			}
			if got, want := *u.TimeDiffSeconds, tt.diff; got != want {
				t.Errorf("timeDiffSeconds = %d, want %d", got, want)
			}
		})
	}
	t.Run("offset form", func(t *testing.T) {
		r := e.get(shared.PathUsage + "?timestamp=2026-11-28T14:50:00%2B01:00")
		var u shared.UsageResponse
		r.decode(t, &u)
		if u.VersionInfo.ID != ids[2] || u.TimeDiffSeconds == nil || *u.TimeDiffSeconds != 0 {
			t.Errorf("got %+v diff %v", u.VersionInfo, u.TimeDiffSeconds)
		}
	})
	for _, bad := range []string{"yesterday", "2026-11-28", "2026-11-28T13:50:00", "1700000000", ""} {
		t.Run("bad "+bad, func(t *testing.T) {
			eb := wantError(t, e.get(shared.PathUsage+"?timestamp="+bad), http.StatusBadRequest, shared.CodeInvalidQuery)
			if eb.Field != "timestamp" {
				t.Errorf("field = %q, want timestamp", eb.Field)
			}
		})
	}
	if r := e.get(shared.PathUsage); r.header.Get("Cache-Control") == "" {
		t.Error("no Cache-Control")
	}
}

func TestAccountQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustPost(snap("default", t0, 10))
	work := e.mustPost(snap("work@example.com", t0.Add(-time.Minute), 77))

	var u shared.UsageResponse
	e.get(shared.PathUsage+"?account=work@example.com").decode(t, &u)
	if u.Account != "work@example.com" || u.VersionInfo.ID != work.ID || u.Meters[0].PercentUsed != 77 {
		t.Errorf("account query returned %+v", u)
	}
	if got, want := strings.Join(u.Accounts, ","), "default,work@example.com"; got != want {
		t.Errorf("accounts = %q, want %q", got, want)
	}
	e.get(shared.PathUsage).decode(t, &u)
	if u.Account != "default" {
		t.Errorf("default account = %q", u.Account)
	}
	wantError(t, e.get(shared.PathUsage+"?account=nobody"), http.StatusNotFound, shared.CodeNoData)
	for _, bad := range []string{"Work", "..", "a/b", "%2e%2e%2fetc", "", strings.Repeat("a", 65)} {
		eb := wantError(t, e.get(shared.PathUsage+"?account="+bad), http.StatusBadRequest, shared.CodeInvalidQuery)
		if eb.Field != "account" {
			t.Errorf("account %q: field = %q", bad, eb.Field)
		}
	}
}

func TestUnknownQueryParameters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustPost(snap("default", t0, 10))
	tests := []struct{ target, field string }{
		{shared.PathUsage + "?foo=1", "foo"},
		{shared.PathUsage + "?Version=1", "Version"},
		{shared.PathUsage + "?api_key=" + testKey, "api_key"},
		{shared.PathHistory + "?version=1", "version"},
		{shared.PathHistory + "?limit=1&limit=2", "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			eb := wantError(t, e.get(tt.target), http.StatusBadRequest, shared.CodeInvalidQuery)
			if eb.Field != tt.field {
				t.Errorf("field = %q, want %q", eb.Field, tt.field)
			}
			if strings.Contains(eb.Message, testKey) {
				t.Error("error message echoes the key")
			}
		})
	}
}

func TestETagAndCaching(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustPost(snap("default", t0, 10))
	e.clock.Set(t0.Add(time.Minute))
	r := e.get(shared.PathUsage)
	etag := r.header.Get("ETag")
	if etag == "" || r.header.Get("Last-Modified") == "" {
		t.Fatalf("ETag %q, Last-Modified %q", etag, r.header.Get("Last-Modified"))
	}
	if got, want := r.header.Get("Cache-Control"), "private, max-age=10"; got != want {
		t.Errorf("fresh Cache-Control = %q, want %q", got, want)
	}

	nm := e.get(shared.PathUsage, "If-None-Match", etag)
	if got, want := nm.status, http.StatusNotModified; got != want {
		t.Fatalf("If-None-Match status = %d, want %d", got, want)
	}
	if len(nm.body) != 0 || nm.header.Get("ETag") != etag || nm.header.Get(shared.HeaderRequestID) == "" {
		t.Errorf("304 body %q, ETag %q, request id %q", nm.body, nm.header.Get("ETag"), nm.header.Get(shared.HeaderRequestID))
	}
	if got := e.get(shared.PathUsage, "If-None-Match", `W/"other", `+etag).status; got != http.StatusNotModified {
		t.Errorf("list If-None-Match = %d", got)
	}
	if got := e.get(shared.PathUsage, "If-None-Match", `"other"`).status; got != http.StatusOK {
		t.Errorf("non-matching If-None-Match = %d", got)
	}

	// The ETag stays while only ageSeconds moves, and changes when the
	// data turns stale or a new version arrives.
	e.clock.Set(t0.Add(2 * time.Minute))
	if got := e.get(shared.PathUsage).header.Get("ETag"); got != etag {
		t.Errorf("ETag changed with age only: %q -> %q", etag, got)
	}
	e.clock.Set(t0.Add(11 * time.Minute))
	stale := e.get(shared.PathUsage, "If-None-Match", etag)
	if stale.status != http.StatusOK {
		t.Errorf("stale data answered %d to an old ETag", stale.status)
	}
	if got, want := stale.header.Get("Cache-Control"), "private, no-cache"; got != want {
		t.Errorf("stale Cache-Control = %q, want %q", got, want)
	}
	e.mustPost(snap("default", t0.Add(10*time.Minute), 11))
	if got := e.get(shared.PathUsage, "If-None-Match", stale.header.Get("ETag")).status; got != http.StatusOK {
		t.Errorf("new version answered %d to the previous ETag", got)
	}
}

func TestHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := range 5 {
		e.mustPost(snap("default", t0.Add(time.Duration(i)*time.Minute), float64(i*10)))
	}
	var h shared.HistoryResponse
	e.get(shared.PathHistory).decode(t, &h)
	if got, want := len(h.Points), 5; got != want {
		t.Fatalf("points = %d, want %d", got, want)
	}
	for i, p := range h.Points {
		if !p.ScrapedAt.Equal(t0.Add(time.Duration(i)*time.Minute)) || p.Meters["session"] != float64(i*10) || p.Meters["weekly_all"] != 18 {
			t.Errorf("point %d = %+v", i, p)
		}
	}
	e.get(shared.PathHistory+"?limit=2").decode(t, &h)
	if len(h.Points) != 2 || h.Points[0].Meters["session"] != 30 || h.Points[1].Meters["session"] != 40 {
		t.Errorf("limit=2 = %+v, want the newest two oldest first", h.Points)
	}
	e.get(shared.PathHistory+"?since="+t0.Add(3*time.Minute).Format(time.RFC3339)).decode(t, &h)
	if len(h.Points) != 2 || h.Points[0].Meters["session"] != 30 {
		t.Errorf("since = %+v", h.Points)
	}
	e.get(shared.PathHistory+"?since="+t0.Add(time.Hour).Format(time.RFC3339)).decode(t, &h)
	if h.Points == nil || len(h.Points) != 0 {
		t.Errorf("since after all = %#v, want an empty list", h.Points)
	}
	e.get(shared.PathHistory+"?limit=2000&account=default").decode(t, &h)
	if len(h.Points) != 5 || h.Account != "default" {
		t.Errorf("limit=2000 = %d points", len(h.Points))
	}
	for _, q := range []string{"limit=0", "limit=2001", "limit=-1", "limit=ten", "since=today", "account=A"} {
		t.Run(q, func(t *testing.T) {
			eb := wantError(t, e.get(shared.PathHistory+"?"+q), http.StatusBadRequest, shared.CodeInvalidQuery)
			if want := strings.SplitN(q, "=", 2)[0]; eb.Field != want {
				t.Errorf("field = %q, want %q", eb.Field, want)
			}
		})
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		method, path string
		status       int
		code         shared.Code
		allow        string
	}{
		{"GET", "/api/nope", 404, shared.CodeNotFound, ""},
		{"POST", "/api/claude/console-usage/extra", 404, shared.CodeNotFound, ""},
		{"GET", "/nope", 404, shared.CodeNotFound, ""},
		{"DELETE", shared.PathUsage, 405, shared.CodeMethodNotAllowed, "POST, GET, HEAD"},
		{"PUT", shared.PathHealth, 405, shared.CodeMethodNotAllowed, "GET, HEAD"},
		{"POST", shared.PathHealth, 405, shared.CodeMethodNotAllowed, "GET, HEAD"},
		{"GET", shared.PathScraperStatus, 405, shared.CodeMethodNotAllowed, "POST"},
		{"POST", shared.PathMetrics, 405, shared.CodeMethodNotAllowed, "GET, HEAD"},
		{"PATCH", shared.PathHistory, 405, shared.CodeMethodNotAllowed, "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := e.do(tt.method, tt.path, "", shared.HeaderAPIKey, testKey)
			eb := wantError(t, r, tt.status, tt.code)
			if !strings.Contains(eb.Message, tt.method) {
				t.Errorf("message %q does not name the method", eb.Message)
			}
			if got := r.header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.RateLimit = 3 }))
	for i := range 3 {
		r := e.post(snap("default", t0.Add(time.Duration(i)*time.Second), 1))
		if r.status != http.StatusCreated {
			t.Fatalf("POST %d = %d: %s", i, r.status, r.body)
		}
		if got, want := r.header.Get("X-RateLimit-Remaining"), strconv.Itoa(2-i); got != want {
			t.Errorf("POST %d: X-RateLimit-Remaining = %q, want %q", i, got, want)
		}
		if got := r.header.Get("X-RateLimit-Limit"); got != "3" {
			t.Errorf("X-RateLimit-Limit = %q", got)
		}
	}
	r := e.post(snap("default", t0.Add(time.Hour), 1))
	wantError(t, r, http.StatusTooManyRequests, shared.CodeRateLimited)
	// fiber's limiter counts its one-minute window on the real clock, so the
	// wait is whatever is left of it: between 1 and 60 seconds.
	retryAfter := r.header.Get("Retry-After")
	if got := shared.ParseRetryAfter(retryAfter, time.Now()); got < time.Second || got > time.Minute {
		t.Errorf("client reads Retry-After %q as %v, want 1s..60s", retryAfter, got)
	}
	for h, want := range map[string]string{"X-RateLimit-Limit": "3", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": retryAfter} {
		if got := r.header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	// Another key has its own budget (and here fails on auth, not on rate).
	wantError(t, e.do(http.MethodPost, shared.PathUsage, snap("default", t0, 1), "Content-Type", "application/json", shared.HeaderAPIKey, "other"),
		http.StatusUnauthorized, shared.CodeAuthInvalidKey)
	// Scraper status shares the POST budget of the key.
	wantError(t, e.do(http.MethodPost, shared.PathScraperStatus, `{"at":"2026-11-28T13:50:00Z","ok":true}`,
		"Content-Type", "application/json", shared.HeaderAPIKey, testKey), http.StatusTooManyRequests, shared.CodeRateLimited)
	// GETs are not limited.
	if got := e.get(shared.PathUsage).status; got != http.StatusOK {
		t.Errorf("GET while POSTs are limited = %d", got)
	}
	if got := metricValue(t, e, "usage_rate_limited_total"); got != 2 {
		t.Errorf("usage_rate_limited_total = %v, want 2", got)
	}
}

func TestPanicBecomesInternal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srv.App().Get("/test-panic", func(*fiber.Ctx) error { panic("boom in handler") })
	r := e.do(http.MethodGet, "/test-panic", "")
	eb := wantError(t, r, http.StatusInternalServerError, shared.CodeInternal)
	if strings.Contains(eb.Message, "boom") {
		t.Errorf("panic value leaked to the client: %q", eb.Message)
	}
	var found bool
	for _, l := range logLines(t, e.logs.String()) {
		if l["msg"] == "panic in handler" && l["requestId"] == eb.RequestID {
			found = true
			if st, _ := l["stack"].(string); !strings.Contains(st, "goroutine") || !strings.Contains(st, "api_test.go") {
				t.Errorf("stack in log is not a stack trace: %.200s", st)
			}
			if l["panic"] != "boom in handler" {
				t.Errorf("panic value in log = %v", l["panic"])
			}
		}
	}
	if !found {
		t.Errorf("no panic log line with requestId %s in %s", eb.RequestID, e.logs.String())
	}
	// The server keeps serving.
	if got := e.do(http.MethodGet, shared.PathHealth, "").status; got != http.StatusServiceUnavailable {
		t.Errorf("health after panic = %d", got)
	}
}

func TestUnknownErrorIsInternal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.srv.App().Get("/test-error", func(*fiber.Ctx) error { return errors.New("secret detail from the database") })
	e.srv.App().Get("/test-fiber-error", func(*fiber.Ctx) error { return fiber.ErrBadGateway })
	for _, p := range []string{"/test-error", "/test-fiber-error"} {
		eb := wantError(t, e.do(http.MethodGet, p, ""), http.StatusInternalServerError, shared.CodeInternal)
		if strings.Contains(eb.Message, "secret") || strings.Contains(eb.Message, "Gateway") {
			t.Errorf("%s: message leaks the cause: %q", p, eb.Message)
		}
		if !strings.Contains(e.logs.String(), eb.RequestID) {
			t.Errorf("%s: request id not in the log", p)
		}
	}
	if !strings.Contains(e.logs.String(), "secret detail from the database") {
		t.Error("real error not logged")
	}
}

func TestStorageErrorsReachTheClient(t *testing.T) {
	t.Parallel()
	fs := &faultStore{}
	e := newEnv(t, wrapStore(func(st storeT) storeT { fs.Store = st; return fs }))
	e.mustPost(snap("default", t0, 1))
	msg := "saving version: no space left on device in /data/default/versions (free 0 bytes, mode drwxr-x---, owner 1000:1000)"
	tests := []struct {
		code   shared.Code
		status int
		read   bool
	}{
		{shared.CodeStorageDiskFull, 507, false},
		{shared.CodeStoragePermissionDenied, 500, false},
		{shared.CodeStorageWriteFailed, 500, false},
		{shared.CodeStorageUnavailable, 503, false},
		{shared.CodeStorageReadFailed, 500, true},
		{shared.CodeStorageUnavailable, 503, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s read=%v", tt.code, tt.read), func(t *testing.T) {
			serr := &shared.Error{Code: tt.code, Message: msg, Err: errors.New("errno detail")}
			fs.set(func(f *faultStore) { f.saveErr, f.readErr = nil, nil })
			var r resp
			if tt.read {
				fs.set(func(f *faultStore) { f.readErr = serr })
				r = e.get(shared.PathUsage)
			} else {
				fs.set(func(f *faultStore) { f.saveErr = serr })
				r = e.post(snap("default", t0.Add(time.Second), 2))
			}
			fs.set(func(f *faultStore) { f.saveErr, f.readErr = nil, nil })
			eb := wantError(t, r, tt.status, tt.code)
			if eb.Message != msg {
				t.Errorf("message = %q, want the store's message with free bytes and mode", eb.Message)
			}
			if eb.Category != shared.CategoryServer {
				t.Errorf("category = %s", eb.Category)
			}
		})
	}
	if got := metricValue(t, e, `usage_store_write_failures_total{code="STORAGE_DISK_FULL"}`); got != 1 {
		t.Errorf("write failures DISK_FULL = %v, want 1", got)
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, r := range []resp{e.do(http.MethodGet, shared.PathHealth, ""), e.do(http.MethodGet, "/missing", "")} {
		if got, want := r.header.Get("Content-Security-Policy"), e.srv.csp; got != want {
			t.Errorf("CSP = %q, want %q", got, want)
		}
		for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
			if got := r.header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
	}
	script := cspDirective(t, e.srv.csp, "script-src")
	if !slices.Contains(script, "'wasm-unsafe-eval'") {
		t.Error("CSP blocks WebAssembly")
	}
	if slices.Contains(script, "'unsafe-inline'") {
		t.Errorf("script-src allows inline scripts: %q", script)
	}
}

// cspDirective returns the sources of one directive of policy.
func cspDirective(t *testing.T, policy, name string) []string {
	t.Helper()
	for _, d := range strings.Split(policy, ";") {
		f := strings.Fields(d)
		if len(f) > 0 && f[0] == name {
			return f[1:]
		}
	}
	t.Fatalf("CSP %q has no %s", policy, name)
	return nil
}

func TestRateLimitPerClientBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		proxies []string
		second  int // status of a POST from another client after one from 1.1.1.1
	}{
		// app.Test connects from 0.0.0.0.
		{"trusted proxy: X-Forwarded-For is the client", []string{"0.0.0.0"}, http.StatusCreated},
		{"no trusted proxy: the header is ignored", nil, http.StatusTooManyRequests},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, withConfig(func(c *Config) { c.RateLimit = 1; c.TrustedProxies = tt.proxies }))
			if r := e.post(snap("default", t0, 1), "X-Forwarded-For", "1.1.1.1"); r.status != http.StatusCreated {
				t.Fatalf("first POST = %d %s", r.status, r.body)
			}
			if r := e.post(snap("default", t0.Add(time.Second), 1), "X-Forwarded-For", "2.2.2.2"); r.status != tt.second {
				t.Errorf("POST from another client = %d, want %d", r.status, tt.second)
			}
			wantError(t, e.post(snap("default", t0.Add(2*time.Second), 1), "X-Forwarded-For", "1.1.1.1"),
				http.StatusTooManyRequests, shared.CodeRateLimited)
		})
	}
}
