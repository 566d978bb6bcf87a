package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-usage/widget/scraper/fakeclaude"
	"github.com/claude-usage/widget/scraper/oauth"
	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
)

// oauthEndpoint is a fake of Anthropic's OAuth usage endpoint on
// 127.0.0.1 that answers status and body and counts its requests.
type oauthEndpoint struct {
	*httptest.Server
	mu    sync.Mutex
	auths []string
}

func newOAuthEndpoint(t *testing.T, status int, body string) *oauthEndpoint {
	t.Helper()
	ep := &oauthEndpoint{}
	ep.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep.mu.Lock()
		ep.auths = append(ep.auths, r.Header.Get("Authorization"))
		ep.mu.Unlock()
		if r.URL.Path != oauth.UsagePath || r.Header.Get("anthropic-beta") != oauth.BetaHeader {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(ep.Close)
	return ep
}

func (ep *oauthEndpoint) requests() []string {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return append([]string{}, ep.auths...)
}

const oauthBody = `{"five_hour":{"utilization":37,"resets_at":"2026-11-28T16:00:00+00:00"},"seven_day":{"utilization":12,"resets_at":"2026-12-04T09:00:00+00:00"},"seven_day_opus":null}`

// claudeLogin writes Claude Code's credentials where HOME=home puts them
// and returns the file, its bytes and its mtime.
func claudeLogin(t *testing.T, home string, expires time.Time) (string, []byte, time.Time) {
	t.Helper()
	p := filepath.Join(home, ".claude", ".credentials.json")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	body := []byte(fmt.Sprintf(`{"claudeAiOauth":{"accessToken":"sk-ant-oat01-cli-test-token","refreshToken":"sk-ant-ort01-x","expiresAt":%d,"scopes":["user:inference","user:profile"]}}`, expires.UnixMilli()))
	if err := os.WriteFile(p, body, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	return p, body, old
}

func assertUnchanged(t *testing.T, path string, body []byte, mtime time.Time) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if !bytes.Equal(got, body) || !st.ModTime().Equal(mtime) {
		t.Errorf("Claude Code's credentials changed: %q (mtime %s), want %q (mtime %s)", got, st.ModTime(), body, mtime)
	}
}

// version reads version n (1 = oldest) of the default account.
func version(t *testing.T, base string, n int) shared.UsageResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s%s?version=%d", base, shared.PathUsage, n), nil)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var u shared.UsageResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &u) != nil {
		t.Fatalf("GET version %d = %d %s", n, resp.StatusCode, body)
	}
	return u
}

// With Claude Code's login present, auto reads OAuth; when that fails it
// scrapes with the browser, and both the server's scraper status and
// `usage-scraper status` say so. The login is never written.
func TestAutoFallsBackToBrowserAndSaysSo(t *testing.T) {
	t.Parallel()
	server := startServer(t)
	site := httptest.NewServer(fakeclaude.Handler(fakeclaude.Options{}))
	t.Cleanup(site.Close)
	ep := newOAuthEndpoint(t, http.StatusUnauthorized, `{"type":"error","error":{"type":"authentication_error","message":"OAuth token has been revoked"}}`)
	dir := t.TempDir()
	creds, body, mtime := claudeLogin(t, dir, time.Now().Add(time.Hour))
	kf := writeKey(t, dir)
	d := realTestDeps(map[string]string{"HOME": dir})
	r := runCLI(t, d, append([]string{"once", "--usage-url", fakeclaude.UsageURL(site.URL, ""), "--oauth-url", ep.URL,
		"--api-key-file", kf, "--server", server}, baseArgs(t, dir)...)...)
	if r.code != scrapeerr.ExitOK {
		t.Fatalf("once = %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := ep.requests(); len(got) != 1 || got[0] != "Bearer sk-ant-oat01-cli-test-token" {
		t.Errorf("OAuth requests = %q, want one with the login's token", got)
	}
	_, u := latest(t, server)
	if got, want := u.Capture, shared.CaptureAPI; got != want {
		t.Errorf("capture = %q, want the browser's %q", got, want)
	}
	if u.Scraper == nil || !u.Scraper.OK || !strings.Contains(u.Scraper.Message, "fell back to browser") ||
		!strings.Contains(u.Scraper.Message, "oauth NOT_LOGGED_IN") {
		t.Errorf("scraper status = %+v, want OK saying it fell back from oauth", u.Scraper)
	}
	st := runCLI(t, d, append([]string{"status"}, baseArgs(t, dir)...)...)
	for _, want := range []string{"source:        browser was used last", "fell back to browser", "oauth", "NOT_LOGGED_IN", "401"} {
		if !strings.Contains(st.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, st.stdout)
		}
	}
	assertUnchanged(t, creds, body, mtime)
}

// --source oauth syncs the endpoint's reading; no Chromium is started.
func TestOnceOAuthSyncs(t *testing.T) {
	t.Parallel()
	server := startServer(t)
	ep := newOAuthEndpoint(t, http.StatusOK, oauthBody)
	dir := t.TempDir()
	creds, body, mtime := claudeLogin(t, dir, time.Now().Add(time.Hour))
	kf := writeKey(t, dir)
	d := testDeps(t, map[string]string{"HOME": dir}) // any browser start fails the test
	r := runCLI(t, d, "once", "--source", "oauth", "--oauth-url", ep.URL, "--api-key-file", kf, "--server", server,
		"--outbox-dir", filepath.Join(dir, "outbox"))
	if r.code != scrapeerr.ExitOK {
		t.Fatalf("once = %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	_, u := latest(t, server)
	if u.Capture != shared.CaptureOAuth || u.Source != "api.anthropic.com/api/oauth/usage" || len(u.Meters) != 2 || u.Meters[0].PercentUsed != 37 {
		t.Errorf("stored snapshot = %+v, want the OAuth reading", u.Snapshot)
	}
	// A second once right away asks nothing: one request per interval.
	r = runCLI(t, d, "once", "--source", "oauth", "--oauth-url", ep.URL, "--api-key-file", kf, "--server", server,
		"--outbox-dir", filepath.Join(dir, "outbox"))
	if got, want := r.code, scrapeerr.ExitOther; got != want || !strings.Contains(r.stderr, "RATE_LIMITED") {
		t.Errorf("second once = %d, want %d with RATE_LIMITED\n%s", got, want, r.stderr)
	}
	if got := len(ep.requests()); got != 1 {
		t.Errorf("%d OAuth requests, want 1", got)
	}
	assertUnchanged(t, creds, body, mtime)

	// An expired login sends nothing and says what to do.
	dir2 := t.TempDir()
	claudeLogin(t, dir2, time.Now().Add(-time.Minute))
	r = runCLI(t, testDeps(t, map[string]string{"HOME": dir2}), "once", "--dry-run", "--source", "oauth", "--oauth-url", ep.URL,
		"--outbox-dir", filepath.Join(dir2, "outbox"))
	if r.code != scrapeerr.ExitNotLoggedIn || !strings.Contains(r.stderr, "next step: run claude once to refresh its login") {
		t.Errorf("expired login: %d\n%s", r.code, r.stderr)
	}
	if got := len(ep.requests()); got != 1 {
		t.Errorf("%d OAuth requests after an expired login, want still 1", got)
	}
}

func runCLIIn(t *testing.T, d deps, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), d, args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

const statuslineInput = `{"session_id":"s1","model":{"id":"claude-opus-4-1","display_name":"Opus"},"rate_limits":{"five_hour":{"used_percentage":42,"resets_at":%d},"seven_day":{"used_percentage":18,"resets_at":"%s"}}}`

// What statusline queued, run (here once) sends.
func TestStatuslineQueuesForRun(t *testing.T) {
	t.Parallel()
	server := startServer(t)
	ep := newOAuthEndpoint(t, http.StatusOK, oauthBody)
	dir := t.TempDir()
	claudeLogin(t, dir, time.Now().Add(time.Hour))
	kf := writeKey(t, dir)
	d := testDeps(t, map[string]string{"HOME": dir})
	in := fmt.Sprintf(statuslineInput, time.Now().Add(2*time.Hour).Unix(), time.Now().Add(72*time.Hour).UTC().Format(time.RFC3339))
	r := runCLIIn(t, d, in, "statusline", "--outbox-dir", filepath.Join(dir, "outbox"))
	if r.code != 0 || !strings.HasPrefix(r.stdout, "5h 42% ↻") || !strings.Contains(r.stdout, " · 7d 18% ↻") {
		t.Fatalf("statusline = %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, d, "once", "--source", "oauth", "--oauth-url", ep.URL, "--api-key-file", kf, "--server", server,
		"--outbox-dir", filepath.Join(dir, "outbox"))
	if r.code != 0 || !strings.Contains(r.stdout, "sent 2 snapshot(s)") {
		t.Fatalf("once = %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if u := version(t, server, 1); u.Capture != shared.CaptureStatusline || len(u.Meters) != 2 || u.Meters[0].PercentUsed != 42 {
		t.Errorf("version 1 = %+v, want the statusline reading", u.Snapshot)
	}
}

// Several Claude Code windows run the statusline at once: every one prints
// its line, one snapshot is queued.
func TestStatuslineConcurrentInvocations(t *testing.T) {
	t.Parallel()
	bin := binary(t, "usage-scraper")
	dir := t.TempDir()
	ob := filepath.Join(dir, "outbox")
	in := fmt.Sprintf(statuslineInput, time.Now().Add(2*time.Hour).Unix(), time.Now().Add(72*time.Hour).UTC().Format(time.RFC3339))
	const n = 12
	type out struct {
		stdout, stderr string
		err            error
	}
	outs := make([]out, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(bin, "statusline", "--outbox-dir", ob)
			cmd.Env = []string{"HOME=" + dir, "PATH=/nonexistent"} // no network tool could be found either
			cmd.Stdin = strings.NewReader(in)
			var so, se bytes.Buffer
			cmd.Stdout, cmd.Stderr = &so, &se
			<-start
			err := cmd.Run()
			outs[i] = out{so.String(), se.String(), err}
		}()
	}
	close(start)
	wg.Wait()
	for i, o := range outs {
		if o.err != nil || !strings.HasPrefix(o.stdout, "5h 42% ↻") {
			t.Errorf("invocation %d: %v %q %s", i, o.err, o.stdout, o.stderr)
		}
	}
	q, err := outbox.Open(ob, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := q.Len(); got != 1 {
		t.Errorf("%d snapshots queued by %d concurrent statuslines, want 1", got, n)
	}
	if _, err := os.Stat(filepath.Join(ob, "state", "statusline.lock")); !os.IsNotExist(err) {
		t.Errorf("lock left behind: %v", err)
	}
}
