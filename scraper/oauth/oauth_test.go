package oauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 11, 28, 13, 50, 0, 0, time.UTC)

// fakeEndpoint is the OAuth usage endpoint on 127.0.0.1: it records every
// request and answers with the status, headers and body it is given.
type fakeEndpoint struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []*http.Request
	status  int
	header  http.Header
	body    string
	granted map[string]bool // tokens the fake accepts; nil: all
}

func newEndpoint(t *testing.T, status int, body string) *fakeEndpoint {
	f := &fakeEndpoint{status: status, body: body, header: http.Header{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.reqs = append(f.reqs, r.Clone(context.Background()))
		if r.URL.Path != UsagePath {
			http.NotFound(w, r)
			return
		}
		for k, v := range f.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		fmt.Fprint(w, f.body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeEndpoint) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

const legacyBody = `{"five_hour":{"utilization":42,"resets_at":"2026-11-28T16:00:00+00:00"},"seven_day":{"utilization":18,"resets_at":"2026-12-04T09:00:00+00:00"},"seven_day_opus":null,"iguana_necktie":null}`

// writeCreds writes Claude Code's credentials file into a temporary
// CLAUDE_CONFIG_DIR and returns the directory and the file.
func writeCreds(t *testing.T, token string, expires time.Time) (dir, file string) {
	t.Helper()
	dir = t.TempDir()
	file = filepath.Join(dir, ".credentials.json")
	body := fmt.Sprintf(`{"claudeAiOauth":{"accessToken":%q,"refreshToken":"rt-secret","expiresAt":%d,"scopes":["user:inference","user:profile"],"subscriptionType":"max"}}`,
		token, expires.UnixMilli())
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	// An old mtime, so that a rewrite within the same second shows.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(file, old, old); err != nil {
		t.Fatal(err)
	}
	return dir, file
}

func locator(dir string) Locator {
	return Locator{Getenv: func(k string) string {
		if k == "CLAUDE_CONFIG_DIR" {
			return dir
		}
		return ""
	}, Home: "/nonexistent-home", GOOS: "linux"}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }

func newClient(base string, dir string, c *clock) *Client {
	return &Client{BaseURL: base, Load: locator(dir).Load, Now: c.now, MinGap: 4 * time.Minute}
}

func TestRequestHeadersAndSnapshot(t *testing.T) {
	ep := newEndpoint(t, 200, legacyBody)
	dir, file := writeCreds(t, "sk-ant-oat01-token-aaaa", t0.Add(time.Hour))
	before, _ := os.ReadFile(file)
	stBefore, _ := os.Stat(file)
	c := newClient(ep.URL, dir, &clock{t0})
	snap, err := c.Scrape(t.Context(), "ignored")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ep.count(), 1; got != want {
		t.Fatalf("requests = %d, want %d", got, want)
	}
	r := ep.reqs[0]
	if got, want := r.Method, http.MethodGet; got != want {
		t.Errorf("method = %s, want %s", got, want)
	}
	for _, h := range []struct{ name, want string }{
		{"Authorization", "Bearer sk-ant-oat01-token-aaaa"},
		{"Anthropic-Beta", "oauth-2025-04-20"},
		{"User-Agent", "claude-code/" + ClaudeCodeVersion},
		{"Accept", "application/json"},
	} {
		if got := r.Header.Values(h.name); len(got) != 1 || got[0] != h.want {
			t.Errorf("header %s = %q, want exactly %q", h.name, got, h.want)
		}
	}
	if got, want := snap.Capture, shared.CaptureOAuth; got != want {
		t.Errorf("capture = %q, want %q", got, want)
	}
	if got, want := len(snap.Meters), 2; got != want {
		t.Fatalf("meters = %+v, want %d", snap.Meters, want)
	}
	if got, want := snap.Meters[0].PercentUsed, 42.0; got != want {
		t.Errorf("session = %g, want %g", got, want)
	}
	s := snap
	s.Normalize()
	if err := s.Validate(t0); err != nil {
		t.Errorf("snapshot fails validation: %v", err)
	}
	// Read only: the login is Claude Code's.
	after, _ := os.ReadFile(file)
	stAfter, _ := os.Stat(file)
	if !bytes.Equal(before, after) {
		t.Errorf("credentials file changed:\n%s\n%s", before, after)
	}
	if !stAfter.ModTime().Equal(stBefore.ModTime()) || stAfter.Mode() != stBefore.Mode() {
		t.Errorf("credentials file touched: mtime %s → %s, mode %s → %s", stBefore.ModTime(), stAfter.ModTime(), stBefore.Mode(), stAfter.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("CLAUDE_CONFIG_DIR holds %d entries after a scrape, want only the credentials file", len(entries))
	}
}

// Every body shape the parser knows comes through the client.
func TestBodyShapes(t *testing.T) {
	files, err := filepath.Glob("../parse/testdata/oauth/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no OAuth bodies in ../parse/testdata/oauth: %v", err)
	}
	files = append(files, "../parse/testdata/api/limits.json", "../parse/testdata/api/spend.json", "../parse/testdata/api/extra_usage.json")
	for _, f := range files {
		if strings.HasSuffix(f, ".golden.json") {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ep := newEndpoint(t, 200, string(body))
			dir, _ := writeCreds(t, "tok-shapes-0123456789", t0.Add(time.Hour))
			snap, err := newClient(ep.URL, dir, &clock{t0}).Scrape(t.Context(), "")
			switch base := filepath.Base(f); base {
			case "empty.json", "not_json.json":
				if got, want := scrapeerr.ClassOf(err), scrapeerr.LayoutChanged; got != want {
					t.Fatalf("class = %q, want %q (err %v)", got, want, err)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if len(snap.Meters) == 0 || snap.Capture != shared.CaptureOAuth {
					t.Errorf("snapshot = %+v, want oauth meters", snap)
				}
			}
		})
	}
}

func TestFailures(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		header    map[string]string
		body      string
		wantClass scrapeerr.Class
		wantStep  string
		wantWait  time.Duration
	}{
		{"401", 401, nil, `{"type":"error","error":{"type":"authentication_error","message":"OAuth token has been revoked"}}`,
			scrapeerr.NotLoggedIn, StepRejected, 0},
		{"403", 403, nil, `{"type":"error","error":{"type":"permission_error","message":"OAuth token does not meet scope requirement user:profile"}}`,
			Forbidden, Forbidden.NextStep(), 0},
		{"429 with Retry-After", 429, map[string]string{"Retry-After": "1200"}, `{"type":"error","error":{"type":"rate_limit_error","message":"Rate limited"}}`,
			scrapeerr.RateLimited, shared.ScrapeRateLimited.NextStep(), 20 * time.Minute},
		{"429 with a short Retry-After", 429, map[string]string{"Retry-After": "10"}, `{}`,
			scrapeerr.RateLimited, shared.ScrapeRateLimited.NextStep(), scrapeerr.MinRateLimitWait},
		{"429 without Retry-After", 429, nil, ``, scrapeerr.RateLimited, shared.ScrapeRateLimited.NextStep(), scrapeerr.MinRateLimitWait},
		{"500", 500, nil, `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`, scrapeerr.Network, StepServer, 0},
		{"503 not JSON", 503, nil, `<html>down</html>`, scrapeerr.Network, StepServer, 0},
		{"404", 404, nil, `{}`, scrapeerr.Unknown, shared.ScrapeUnknown.NextStep(), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep := newEndpoint(t, tc.status, tc.body)
			for k, v := range tc.header {
				ep.header.Set(k, v)
			}
			dir, _ := writeCreds(t, "tok-failures-0123456789", t0.Add(time.Hour))
			_, err := newClient(ep.URL, dir, &clock{t0}).Scrape(t.Context(), "")
			if got, want := scrapeerr.ClassOf(err), tc.wantClass; got != want {
				t.Fatalf("class = %q, want %q (err %v)", got, want, err)
			}
			if got, want := scrapeerr.NextStep(err), tc.wantStep; got != want {
				t.Errorf("next step = %q, want %q", got, want)
			}
			if got, want := scrapeerr.WaitOf(err), tc.wantWait; got != want {
				t.Errorf("wait = %s, want %s", got, want)
			}
		})
	}
}

func TestNetworkFailure(t *testing.T) {
	ep := newEndpoint(t, 200, legacyBody)
	base := ep.URL
	ep.Close() // nothing listens there any more
	dir, _ := writeCreds(t, "tok-network-0123456789", t0.Add(time.Hour))
	_, err := newClient(base, dir, &clock{t0}).Scrape(t.Context(), "")
	if got, want := scrapeerr.ClassOf(err), scrapeerr.Network; got != want {
		t.Fatalf("class = %q, want %q (err %v)", got, want, err)
	}
	if got, want := scrapeerr.NextStep(err), StepNetwork; got != want {
		t.Errorf("next step = %q, want %q", got, want)
	}
}

func TestExpiredAndMissingCredentialsSendNothing(t *testing.T) {
	ep := newEndpoint(t, 200, legacyBody)
	expiredDir, _ := writeCreds(t, "tok-expired-0123456789", t0.Add(-time.Minute))
	noTokenDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(noTokenDir, ".credentials.json"), []byte(`{"claudeAiOauth":{"accessToken":""}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	badDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(badDir, ".credentials.json"), []byte(`not json`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		dir       string
		wantClass scrapeerr.Class
		wantStep  string
		wantIn    string
	}{
		{"expired", expiredDir, scrapeerr.NotLoggedIn, StepExpired, "expired at 2026-11-28T13:49:00Z"},
		{"missing", t.TempDir(), scrapeerr.NotLoggedIn, StepMissing, "no Claude Code login found"},
		{"no token", noTokenDir, scrapeerr.NotLoggedIn, StepMissing, "has no claudeAiOauth.accessToken"},
		{"not JSON", badDir, scrapeerr.Unknown, shared.ScrapeUnknown.NextStep(), "not Claude Code's credentials JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newClient(ep.URL, tc.dir, &clock{t0}).Scrape(t.Context(), "")
			if got, want := scrapeerr.ClassOf(err), tc.wantClass; got != want {
				t.Fatalf("class = %q, want %q (err %v)", got, want, err)
			}
			if got, want := scrapeerr.NextStep(err), tc.wantStep; got != want {
				t.Errorf("next step = %q, want %q", got, want)
			}
			if !strings.Contains(err.Error(), tc.wantIn) {
				t.Errorf("error %q does not contain %q", err, tc.wantIn)
			}
		})
	}
	if got := ep.count(); got != 0 {
		t.Errorf("%d request(s) sent without a usable login", got)
	}
}

// One request per interval at most, and a 429's wait holds for its token
// only, also across processes (the state file).
func TestRequestPacing(t *testing.T) {
	ep := newEndpoint(t, 429, `{}`)
	ep.header.Set("Retry-After", "600")
	dir, file := writeCreds(t, "tok-first-0123456789", t0.Add(24*time.Hour))
	clk := &clock{t0}
	statePath := filepath.Join(t.TempDir(), "state", "oauth.json")
	c := newClient(ep.URL, dir, clk)
	c.StatePath = statePath
	scrape := func(c *Client) error {
		_, err := c.Scrape(t.Context(), "")
		return err
	}
	if err := scrape(c); scrapeerr.ClassOf(err) != scrapeerr.RateLimited {
		t.Fatalf("first scrape: %v, want RATE_LIMITED", err)
	}
	ep.mu.Lock()
	ep.status = 200
	ep.body = legacyBody
	ep.mu.Unlock()

	clk.add(5 * time.Minute) // past MinGap, inside the 10 min wait
	c2 := newClient(ep.URL, dir, clk)
	c2.StatePath = statePath // a second process: `once` beside `run`
	err := scrape(c2)
	if got, want := scrapeerr.ClassOf(err), scrapeerr.RateLimited; got != want {
		t.Fatalf("inside the wait: class %q, want %q (err %v)", got, want, err)
	}
	if got, want := scrapeerr.WaitOf(err), 5*time.Minute; got != want {
		t.Errorf("wait left = %s, want %s", got, want)
	}
	if got, want := ep.count(), 1; got != want {
		t.Fatalf("requests = %d, want %d (none inside the wait)", got, want)
	}

	// Another token (Claude Code signed in again) is not held back.
	if err := os.WriteFile(file, []byte(`{"claudeAiOauth":{"accessToken":"tok-second-0123456789","expiresAt":0}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := scrape(c2); err != nil {
		t.Fatalf("new token: %v", err)
	}
	if got, want := ep.count(), 2; got != want {
		t.Fatalf("requests = %d, want %d", got, want)
	}

	// Right after a request: no second one within MinGap.
	clk.add(time.Minute)
	err = scrape(c2)
	if got, want := scrapeerr.ClassOf(err), scrapeerr.RateLimited; got != want {
		t.Fatalf("within MinGap: class %q, want %q", got, want)
	}
	if got, want := ep.count(), 2; got != want {
		t.Errorf("requests = %d, want %d", got, want)
	}
	clk.add(3 * time.Minute)
	if err := scrape(c2); err != nil {
		t.Fatalf("after MinGap: %v", err)
	}
	if got, want := ep.count(), 3; got != want {
		t.Errorf("requests = %d, want %d", got, want)
	}
	raw, _ := os.ReadFile(statePath)
	if strings.Contains(string(raw), "tok-") {
		t.Errorf("state file holds a token: %s", raw)
	}
}

// fakeSecurity writes an executable standing in for macOS's security
// command: it checks its arguments and prints out, or exits with code.
func fakeSecurity(t *testing.T, out string, code int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "security")
	script := fmt.Sprintf(`#!/bin/sh
[ "$1 $2 $3 $4" = "find-generic-password -s Claude Code-credentials -w" ] || { echo "bad args: $*" >&2; exit 2; }
[ %d -eq 0 ] || { echo "The specified item could not be found in the keychain." >&2; exit %d; }
printf '%%s\n' '%s'
`, code, code, out)
	if err := os.WriteFile(p, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeychain(t *testing.T) {
	for _, tc := range []struct {
		name      string
		out       string
		code      int
		wantToken string
		wantErr   error
	}{
		{"item present", `{"claudeAiOauth":{"accessToken":"tok-keychain-0123456789","expiresAt":1796000000000}}`, 0, "tok-keychain-0123456789", nil},
		{"item missing", "", 44, "", ErrNoCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := Locator{Getenv: func(string) string { return "" }, Home: t.TempDir(), GOOS: "darwin",
				Keychain: SecurityCommand{Path: fakeSecurity(t, tc.out, tc.code)}}
			c, err := l.Load(t.Context())
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := c.AccessToken, tc.wantToken; got != want {
				t.Errorf("token = %q, want %q", got, want)
			}
			if !strings.Contains(c.From, "Keychain") {
				t.Errorf("from = %q, want the Keychain", c.From)
			}
		})
	}
	// Elsewhere than macOS the Keychain is never asked.
	l := Locator{Getenv: func(string) string { return "" }, Home: t.TempDir(), GOOS: "linux",
		Keychain: SecurityCommand{Path: "/nonexistent/security"}}
	if _, err := l.Load(t.Context()); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("linux without a file: %v, want ErrNoCredentials", err)
	}
}

func TestDefaultCredentialsFile(t *testing.T) {
	l := Locator{Getenv: func(string) string { return "" }, Home: "/home/u"}
	if got, want := l.File(), "/home/u/.claude/.credentials.json"; got != want {
		t.Errorf("File = %q, want %q", got, want)
	}
	l.Getenv = func(k string) string { return map[string]string{"CLAUDE_CONFIG_DIR": "/cfg"}[k] }
	if got, want := l.File(), "/cfg/.credentials.json"; got != want {
		t.Errorf("File = %q, want %q", got, want)
	}
}
