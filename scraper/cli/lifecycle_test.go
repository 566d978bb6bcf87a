package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claude-usage/widget/scraper/browser"
	"github.com/claude-usage/widget/scraper/fakeclaude"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
)

// chromiumProcs lists the live Chromium processes of this test: those
// whose command line names the profile, and those descended from this
// process whose command line names Chromium (helpers such as the zygote do
// not all carry the profile). Zombies are not alive.
func chromiumProcs(profile string) []string {
	me := os.Getpid()
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || len(cmd) == 0 || state(pid) == "Z" {
			continue
		}
		c := string(cmd)
		if strings.Contains(c, profile) || (strings.Contains(strings.ToLower(c), "chrom") && descends(pid, me)) {
			out = append(out, strconv.Itoa(pid)+" "+strings.ReplaceAll(c, "\x00", " ")[:min(len(c), 80)])
		}
	}
	return out
}

// stat returns the fields of /proc/pid/stat after the command name.
func stat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

func state(pid int) string {
	if f := stat(pid); len(f) > 0 {
		return f[0]
	}
	return ""
}

func descends(pid, ancestor int) bool {
	for range 64 {
		f := stat(pid)
		if len(f) < 2 {
			return false
		}
		ppid, _ := strconv.Atoi(f[1])
		if ppid == ancestor {
			return true
		}
		if ppid <= 1 {
			return false
		}
		pid = ppid
	}
	return false
}

// noChromium waits for the Chromium processes of a closed browser to be
// gone; real processes take a moment to exit after their parent.
func noChromium(t *testing.T, profile, when string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := chromiumProcs(profile)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: Chromium still alive: %v", when, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func realLazy(t *testing.T, keep bool) (*lazyBrowser, string) {
	profile := t.TempDir()
	return &lazyBrowser{d: realDeps(), keep: keep, opts: BrowserOptions{ChromePath: chromium, ProfileDir: profile,
		Headless: true, PageTimeout: 20 * time.Second}}, profile
}

func scrapeOK(t *testing.T, l *lazyBrowser, url string) shared.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	s, err := l.Scrape(ctx, url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	if len(s.Meters) == 0 {
		t.Fatalf("scrape gave no meters: %+v", s)
	}
	return s
}

// By default no Chromium runs between two scrapes; the profile stays.
// Not parallel: the /proc check counts every Chromium this test binary
// started.
func TestBrowserClosedBetweenScrapes(t *testing.T) {
	site := httptest.NewServer(fakeclaude.Handler(fakeclaude.Options{}))
	t.Cleanup(site.Close)
	l, profile := realLazy(t, false)
	defer l.Close()
	url := fakeclaude.UsageURL(site.URL, "")
	noChromium(t, profile, "before the first scrape")
	scrapeOK(t, l, url)
	noChromium(t, profile, "after the first scrape")
	if _, err := os.Stat(filepath.Join(profile, "Default")); err != nil {
		t.Errorf("the profile was not kept: %v", err)
	}
	scrapeOK(t, l, url)
	noChromium(t, profile, "after the second scrape")
}

// --keep-browser keeps one Chromium across scrapes.
func TestKeepBrowserReusesOne(t *testing.T) {
	site := httptest.NewServer(fakeclaude.Handler(fakeclaude.Options{}))
	t.Cleanup(site.Close)
	l, profile := realLazy(t, true)
	url := fakeclaude.UsageURL(site.URL, "")
	scrapeOK(t, l, url)
	pid := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		b, ok := l.b.(*browser.Browser)
		if !ok || b.Process() == nil {
			t.Fatal("no Chromium kept after the scrape")
		}
		return b.Process().Pid
	}
	first := pid()
	if len(chromiumProcs(profile)) == 0 {
		t.Fatal("no Chromium alive between scrapes with keep")
	}
	scrapeOK(t, l, url)
	if got := pid(); got != first {
		t.Errorf("second scrape ran in Chromium pid %d, want the kept %d", got, first)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	noChromium(t, profile, "after Close")
}

// login without a display, and login on a profile the running scraper
// holds, each say what is wrong and what to do — never "Chromium is
// missing or crashed".
func TestLoginMessages(t *testing.T) {
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	site := httptest.NewServer(fakeclaude.Handler(fakeclaude.Options{}))
	t.Cleanup(site.Close)
	dir := t.TempDir()
	profile := filepath.Join(dir, "profile")
	d := realTestDeps(map[string]string{"HOME": dir})
	args := []string{"login", "--profile-dir", profile, "--chrome-path", chromium, "--usage-url", fakeclaude.UsageURL(site.URL, "")}

	r := runCLI(t, d, args...)
	if got, want := r.code, scrapeerr.ExitCode(shared.ScrapeNoDisplay); got != want {
		t.Errorf("no display: exit %d, want %d", got, want)
	}
	if !strings.Contains(r.stderr, "NO_DISPLAY") || !strings.Contains(r.stderr, "next step: "+shared.ScrapeNoDisplay.NextStep()) {
		t.Errorf("no display: stderr lacks the class and its next step:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "missing or crashed") {
		t.Errorf("no display reported as a broken Chromium:\n%s", r.stderr)
	}

	// The running agent's Chromium holds the profile.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	agent, err := browser.New(ctx, browser.Options{ChromePath: chromium, ProfileDir: profile, Headless: true})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	r = runCLI(t, d, args...)
	if !strings.Contains(r.stderr, "PROFILE_IN_USE") || !strings.Contains(r.stderr, "next step: "+shared.ScrapeProfileInUse.NextStep()) ||
		!strings.Contains(r.stderr, strconv.Itoa(agent.Process().Pid)) {
		t.Errorf("profile in use: stderr lacks the class, the holder and the next step:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "missing or crashed") {
		t.Errorf("profile in use reported as a broken Chromium:\n%s", r.stderr)
	}
}

// doctor checks each source and the server and says what to do; it exits
// non-zero only for a problem that stops scraping or syncing.
func TestDoctor(t *testing.T) {
	t.Parallel()
	server := startServer(t)
	dir := t.TempDir()
	kf := writeKey(t, dir)
	bad := filepath.Join(dir, "bad-key")
	if err := os.WriteFile(bad, []byte("not-the-servers-key-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<html>captive portal</html>"))
	}))
	t.Cleanup(notServer.Close)
	withLogin := t.TempDir()
	claudeLogin(t, withLogin, time.Now().Add(time.Hour))
	expired := t.TempDir()
	claudeLogin(t, expired, time.Now().Add(-time.Hour))

	for _, tc := range []struct {
		name     string
		home     string
		args     []string
		wantCode int
		want     []string
	}{
		{"oauth login and server fine", withLogin, []string{"--api-key-file", kf, "--server", server}, 0,
			[]string{"ok       Claude Code login (oauth)", "valid until", "ok       usage-server", "accepts the key"}},
		{"auto without login or profile: browser needs a login", dir, []string{"--api-key-file", kf, "--server", server}, 1,
			[]string{"note     Claude Code login (oauth)", "PROBLEM  Chromium profile", "run `usage-scraper login`", "ok       Chromium"}},
		{"oauth only, expired", expired, []string{"--source", "oauth", "--api-key-file", kf, "--server", server}, 1,
			[]string{"PROBLEM  Claude Code login (oauth)", "expired at", "→ run claude once to refresh its login"}},
		{"wrong key", withLogin, []string{"--api-key-file", bad, "--server", server}, 1,
			[]string{"PROBLEM  usage-server", "refused the key: AUTH_INVALID_KEY"}},
		{"not a usage-server", withLogin, []string{"--api-key-file", kf, "--server", notServer.URL}, 1,
			[]string{"PROBLEM  usage-server", "not like a usage-server", "check --server"}},
		{"browser without Chromium", withLogin, []string{"--source", "browser", "--chrome-path", "/nonexistent/chromium", "--api-key-file", kf, "--server", server}, 1,
			[]string{"PROBLEM  Chromium", "/nonexistent/chromium", shared.ScrapeBrowser.NextStep()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := testDeps(t, map[string]string{"HOME": tc.home})
			r := runCLI(t, d, append([]string{"doctor", "--profile-dir", filepath.Join(tc.home, "profile")}, tc.args...)...)
			if r.code != tc.wantCode {
				t.Errorf("exit = %d, want %d\n%s%s", r.code, tc.wantCode, r.stdout, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("doctor output lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}
