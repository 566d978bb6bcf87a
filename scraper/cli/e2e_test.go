package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testbin"
	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/scraper/fakeclaude"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
)

// These tests drive the command with the real browser (headless Chromium),
// the real demo and fixture sites, and the real usage-server binary.

const (
	e2eKey   = "cli-e2e-write-key-0123456789"
	e2eToken = "cli-e2e-read-token-0123456789"
	chromium = "/usr/bin/chromium"
)

// realTestDeps are the real parts with env as the whole environment.
func realTestDeps(env map[string]string) deps {
	d := realDeps()
	d.getenv = func(k string) string { return env[k] }
	return d
}

// baseArgs keep every command away from the developer's profile and outbox.
func baseArgs(t *testing.T, dir string, extra ...string) []string {
	return append([]string{"--profile-dir", filepath.Join(dir, "profile"), "--outbox-dir", filepath.Join(dir, "outbox"),
		"--chrome-path", chromium}, extra...)
}

func TestOnceDryRunAgainstDemo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, err := fakeclaude.Start(ctx, "127.0.0.1:0", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("--dry-run talked to the server: %s %s", r.Method, r.URL)
	}))
	defer srv.Close()
	args := append([]string{"once", "--dry-run", "--usage-url", fakeclaude.UsageURL(base, ""), "--server", srv.URL}, baseArgs(t, dir)...)
	r := runCLI(t, realTestDeps(map[string]string{"HOME": dir}), args...)
	if r.code != scrapeerr.ExitOK {
		t.Fatalf("exit = %d\nstderr: %s", r.code, r.stderr)
	}
	snap, err := shared.DecodeSnapshot([]byte(r.stdout))
	if err != nil {
		t.Fatalf("stdout is not a snapshot: %v\n%s", err, r.stdout)
	}
	if err := snap.Validate(time.Now()); err != nil {
		t.Errorf("snapshot does not validate: %v", err)
	}
	if snap.Account != shared.DefaultAccount || len(snap.Meters) == 0 || snap.Capture == "" {
		t.Errorf("snapshot = %+v", snap)
	}
	if _, ok := snap.Meter(shared.MeterSession); !ok {
		t.Errorf("no session meter in %+v", snap.Meters)
	}
	if _, err := os.Stat(filepath.Join(dir, "outbox")); !errors.Is(err, os.ErrNotExist) {
		t.Error("--dry-run created an outbox")
	}
}

// Through real Chromium; CHALLENGE and LAYOUT_CHANGED take the browser's
// 10 s meter wait each, so their codes are checked in TestFailExitCodes
// and their detection in scraper/browser.
func TestOnceExitCodeByFailureClass(t *testing.T) {
	t.Parallel()
	site := httptest.NewServer(fakeclaude.Handler(fakeclaude.Options{}))
	t.Cleanup(site.Close)
	closed := testutil.FreeAddr(t)
	for _, tc := range []struct {
		name string
		url  string
		args []string
		want int
	}{
		{"ok", fakeclaude.UsageURL(site.URL, fakeclaude.VariantLimits), nil, scrapeerr.ExitOK},
		{"partial is ok", fakeclaude.UsageURL(site.URL, fakeclaude.VariantMissing), nil, scrapeerr.ExitOK},
		{"login redirect", fakeclaude.UsageURL(site.URL, fakeclaude.VariantLogin), nil, scrapeerr.ExitNotLoggedIn},
		{"no chromium", fakeclaude.UsageURL(site.URL, ""), []string{"--chrome-path", "/nonexistent/chromium"}, scrapeerr.ExitBrowser},
		{"unreachable", "http://" + closed + "/settings/usage", nil, scrapeerr.ExitNetwork},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := append(append([]string{"once", "--dry-run", "--usage-url", tc.url}, baseArgs(t, dir)...), tc.args...)
			r := runCLI(t, realTestDeps(map[string]string{"HOME": dir}), args...)
			if r.code != tc.want {
				t.Fatalf("exit = %d, want %d\nstderr: %s", r.code, tc.want, r.stderr)
			}
			if tc.want != scrapeerr.ExitOK && !strings.Contains(r.stderr, "next step: ") {
				t.Errorf("no next step for the user:\n%s", r.stderr)
			}
		})
	}
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// binary returns a built command: $USAGE_BIN_DIR/<name> from the Makefile,
// or one built once for this test binary.
func binary(t *testing.T, name string) string {
	t.Helper()
	binOnce.Do(func() { binDir, binErr = os.MkdirTemp("", "cli-test-bin-") })
	if binErr != nil {
		t.Fatal(binErr)
	}
	p, err := testbin.Locate(binDir, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startServer runs the real usage-server until the test ends and returns
// its base URL.
func startServer(t *testing.T) string {
	t.Helper()
	addr := testutil.FreeAddr(t)
	p := testutil.StartProcess(t, binary(t, "usage-server"), []string{"--addr", addr, "--data-dir", t.TempDir(), "--api-key", e2eKey,
		"--read-token", e2eToken, "--web-dir", t.TempDir(), "--rate-limit", "0"},
		testutil.ProcessOptions{Env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}})
	if err := p.WaitLine("listening on ", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// latest reads the latest version of the default account; total 0 when
// there is none yet.
func latest(t *testing.T, base string) (int, shared.UsageResponse) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+shared.PathUsage+"?version=-1", nil)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return 0, shared.UsageResponse{}
	}
	var u shared.UsageResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &u) != nil {
		t.Fatalf("GET latest = %d %s", resp.StatusCode, body)
	}
	return u.VersionInfo.Total, u
}

func writeKey(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "api-key")
	if err := os.WriteFile(p, []byte(e2eKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// once scrapes the demo and syncs to the real server, twice: two versions,
// the scrape status on the server, and status shows the successes.
func TestOnceSyncsToRealServer(t *testing.T) {
	t.Parallel()
	server := startServer(t)
	dir := t.TempDir()
	kf := writeKey(t, dir)
	d := realTestDeps(map[string]string{"HOME": dir, "USAGE_SERVER_URL": server})
	// once against the demo site served by this test.
	dctx, dcancel := context.WithCancel(context.Background())
	defer dcancel()
	base, err := fakeclaude.Start(dctx, "127.0.0.1:0", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		r := runCLI(t, d, append([]string{"once", "--usage-url", fakeclaude.UsageURL(base, ""), "--api-key-file", kf}, baseArgs(t, dir)...)...)
		if r.code != scrapeerr.ExitOK || !strings.Contains(r.stdout, "synced: ") {
			t.Fatalf("once = %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if strings.Contains(r.stderr, e2eKey) {
			t.Error("the key appears in the log")
		}
		n, u := latest(t, server)
		if n != i || u.Account != shared.DefaultAccount || len(u.Meters) == 0 {
			t.Errorf("after once %d: %d versions, latest %+v", i, n, u.Snapshot)
		}
		if u.Scraper == nil || !u.Scraper.OK || u.Scraper.Category != shared.ScrapeOK {
			t.Errorf("scraper status on the server = %+v, want OK", u.Scraper)
		}
	}
	r := runCLI(t, d, append([]string{"status"}, baseArgs(t, dir)...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "0 snapshot(s) waiting") || strings.Contains(r.stdout, "last success:  never") ||
		!strings.Contains(r.stdout, "last 2 syncs: success 100%") {
		t.Errorf("status = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// once whose sync fails keeps the snapshot and says so (exit 1); the next
// once sends both.
func TestOnceSyncFailureKeepsSnapshot(t *testing.T) {
	t.Parallel()
	site := httptest.NewServer(fakeclaude.Handler(fakeclaude.Options{}))
	t.Cleanup(site.Close)
	dir := t.TempDir()
	kf := writeKey(t, dir)
	// A server that is down is retried for 10 s + 20 s + 40 s of real time
	// here (the waits themselves are tested in scraper/sync); a refused key
	// is not retried and keeps the snapshot just the same.
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(shared.ErrorBody{ErrorCode: shared.CodeAuthInvalidKey, Message: "the key does not match",
			RequestID: "d4k2c6p3qf7c73a5ue10", Category: shared.CategoryAuth})
	}))
	defer auth.Close()
	d := realTestDeps(map[string]string{"HOME": dir})
	args := append([]string{"once", "--usage-url", fakeclaude.UsageURL(site.URL, ""), "--api-key-file", kf, "--server", auth.URL}, baseArgs(t, dir)...)
	r := runCLI(t, d, args...)
	if r.code != scrapeerr.ExitOther || !strings.Contains(r.stderr, "sync failed") || !strings.Contains(r.stderr, "1 waiting") {
		t.Fatalf("once against a refusing server = %d\n%s", r.code, r.stderr)
	}
	r = runCLI(t, d, append([]string{"status"}, baseArgs(t, dir)...)...)
	if !strings.Contains(r.stdout, "1 snapshot(s) waiting") || !strings.Contains(r.stdout, "sync AUTH") {
		t.Errorf("status after the failed sync:\n%s", r.stdout)
	}
	server := startServer(t)
	args = append([]string{"once", "--usage-url", fakeclaude.UsageURL(site.URL, ""), "--api-key-file", kf, "--server", server}, baseArgs(t, dir)...)
	if r := runCLI(t, d, args...); r.code != scrapeerr.ExitOK {
		t.Fatalf("once = %d\n%s", r.code, r.stderr)
	}
	if n, _ := latest(t, server); n != 2 {
		t.Errorf("server holds %d versions, want the kept one and the new one", n)
	}
}

// The real binary: bad usage is 2, a signed-out page is 3, and run --demo
// syncs to the real server and stops cleanly (exit 0, Chromium gone) on
// SIGTERM.
func TestBinary(t *testing.T) {
	t.Parallel()
	bin := binary(t, "usage-scraper")
	site := httptest.NewServer(fakeclaude.Handler(fakeclaude.Options{}))
	t.Cleanup(site.Close)
	dir := t.TempDir()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	exitOf := func(args ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var errb bytes.Buffer
		cmd.Stderr = &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), errb.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, errb.String()
	}
	if code, _ := exitOf("once", "--interval", "1s"); code != scrapeerr.ExitUsage {
		t.Errorf("bad usage exit = %d, want 2", code)
	}
	if code, stderr := exitOf(append([]string{"once", "--dry-run", "--usage-url", fakeclaude.UsageURL(site.URL, fakeclaude.VariantLogin)}, baseArgs(t, dir)...)...); code != scrapeerr.ExitNotLoggedIn {
		t.Errorf("signed-out exit = %d, want 3\n%s", code, stderr)
	}

	server := startServer(t)
	kf := writeKey(t, dir)
	p := testutil.StartProcess(t, bin, append([]string{"run", "--demo", "--interval", "10m", "--server", server, "--api-key-file", kf},
		baseArgs(t, dir)...), testutil.ProcessOptions{Env: env})
	errb := p.Log
	// The first cycle syncs the snapshot and then reports the scrape.
	deadline := time.Now().Add(45 * time.Second)
	for {
		if n, u := latest(t, server); n > 0 && u.Scraper != nil {
			if n != 1 || !u.Scraper.OK || len(u.Meters) == 0 {
				t.Errorf("after the first cycle: %d versions, status %+v", n, u.Scraper)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the binary's run --demo synced nothing:\n%s", errb)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
		if err := p.ExitErr(); err != nil {
			t.Errorf("run after SIGTERM: %v\n%s", err, errb)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not stop on SIGTERM")
	}
	if !strings.Contains(errb.String(), `"msg":"scraper stopped"`) {
		t.Errorf("no stop line in the log:\n%s", errb)
	}
	// The browser went with it: no Chromium left on this profile.
	out, _ := exec.Command("pgrep", "-f", filepath.Join(dir, "profile")).Output()
	if len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("Chromium still running on the profile after SIGTERM: pids %s", out)
	}
}
