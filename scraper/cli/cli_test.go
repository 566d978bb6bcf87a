package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/config"
	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

// testDeps runs the command with env as the whole environment and no
// browser: a test that reaches for one fails.
func testDeps(t *testing.T, env map[string]string) deps {
	return deps{
		getenv:     func(k string) string { return env[k] },
		goos:       "linux",
		executable: func() (string, error) { return "/opt/usage/bin/usage-scraper", nil },
		newBrowser: func(context.Context, BrowserOptions) (Browser, error) {
			t.Error("the command started a browser")
			return nil, errors.New("no browser in this test")
		},
		startDemo: func(context.Context, string) (string, error) {
			t.Error("the command started the demo")
			return "", errors.New("no demo in this test")
		},
	}
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, d deps, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), d, args, strings.NewReader(""), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func keyFile(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "api-key")
	if err := os.WriteFile(p, []byte("k-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadUsageExitsTwo(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	kf := keyFile(t, home)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string // in stderr
	}{
		{"no command", nil, nil, "Usage: usage-scraper <command>"},
		{"unknown command", nil, []string{"scrape"}, `unknown command "scrape"`},
		{"unknown flag", nil, []string{"once", "--bogus"}, "flag provided but not defined: -bogus"},
		{"stray argument", nil, []string{"status", "extra"}, `unexpected argument "extra"`},
		{"interval too short", nil, []string{"run", "--interval", "1s"}, "--interval 1s is too short"},
		{"bad interval env", map[string]string{"USAGE_INTERVAL": "often"}, []string{"run"}, `USAGE_INTERVAL="often" is not a duration`},
		{"bad headless env", map[string]string{"USAGE_HEADLESS": "maybe"}, []string{"once"}, `USAGE_HEADLESS="maybe" is not a boolean`},
		{"bad server", nil, []string{"once", "--server", "ftp://x"}, "--server"},
		{"bad usage url", nil, []string{"once", "--usage-url", "claude.ai"}, "--usage-url"},
		{"bad account", nil, []string{"once", "--account", "Bad Name"}, "--account"},
		{"bad log level", nil, []string{"status", "--log-level", "loud"}, "--log-level"},
		{"once without a key", nil, []string{"once"}, "no write key"},
		{"run without a key", nil, []string{"run", "--outbox-dir", filepath.Join(home, "ob")}, "no write key"},
		{"missing key file", nil, []string{"once", "--api-key-file", filepath.Join(home, "nope")}, "reading --api-key-file"},
		{"install with inline key", nil, []string{"install-launchd", "--print", "--api-key", "secret"}, "pass the key as --api-key-file"},
		{"install without key file", nil, []string{"install-systemd", "--print"}, "--api-key-file is required"},
		{"install relative program", nil, []string{"install-systemd", "--print", "--api-key-file", kf, "--program", "bin/usage-scraper"}, "must be an absolute path"},
		{"launchd without log dir", nil, []string{"install-launchd", "--print", "--api-key-file", kf, "--log-dir", ""}, "--log-dir must not be empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"HOME": home}
			for k, v := range tc.env {
				env[k] = v
			}
			r := runCLI(t, testDeps(t, env), tc.args...)
			if r.code != scrapeerr.ExitUsage {
				t.Errorf("exit = %d, want %d\nstderr: %s", r.code, scrapeerr.ExitUsage, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tc.want)
			}
			if strings.Contains(r.stderr, "secret") || strings.Contains(r.stdout, "secret") {
				t.Error("the key was echoed")
			}
		})
	}
}

func TestHelpDocumentsEverything(t *testing.T) {
	t.Parallel()
	d := testDeps(t, map[string]string{"HOME": "/home/ada", "USAGE_API_KEY": "env-secret"})
	r := runCLI(t, d, "--help")
	if r.code != 0 {
		t.Fatalf("--help exit = %d", r.code)
	}
	for _, want := range []string{"run", "once", "login", "status", "statusline", "doctor", "install-launchd", "install-systemd", "--dry-run", "--demo", "--source",
		"3 NOT_LOGGED_IN", "4 CHALLENGE", "5 LAYOUT_CHANGED", "6 BROWSER", "7 NETWORK"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	for cmd, c := range commands {
		r := runCLI(t, d, cmd, "--help")
		if r.code != 0 {
			t.Errorf("%s --help exit = %d", cmd, r.code)
		}
		if c.check != nil {
			// statusline reads only its own flags.
			for _, want := range []string{"--outbox-dir", "/home/ada/.local/share/usage-scraper/outbox", "--account", "--log-level", "USAGE_LOG_FORMAT"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("%s --help lacks %q", cmd, want)
				}
			}
			continue
		}
		if cmd == "run" || cmd == "once" || cmd == "doctor" {
			for _, want := range []string{"--source", "USAGE_SOURCE", "--oauth-url", "https://api.anthropic.com", "--keep-browser", "USAGE_KEEP_BROWSER"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("%s --help lacks %q", cmd, want)
				}
			}
		}
		for _, want := range []string{"--server", "USAGE_SERVER_URL", "--api-key", "USAGE_API_KEY", "--api-key-file", "--usage-url",
			"https://claude.ai/settings/usage", "--profile-dir", "/home/ada/.config/usage-scraper/chromium-profile", "--outbox-dir",
			"/home/ada/.local/share/usage-scraper/outbox", "--account", "--chrome-path", "--headless", "--interval", "5m0s",
			"--log-level", "--log-format", "USAGE_LOG_FORMAT", "SYNC_VERBOSE"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%s --help lacks %q", cmd, want)
			}
		}
		if strings.Contains(r.stdout, "env-secret") {
			t.Errorf("%s --help shows the key from the environment", cmd)
		}
	}
}

func TestDefaultPathsPerOS(t *testing.T) {
	t.Parallel()
	env := map[string]string{"HOME": "/Users/ada"}
	get := func(k string) string { return env[k] }
	if p := defaultPaths("darwin", get); p.configDir != "/Users/ada/Library/Application Support/usage-scraper" || p.dataDir != p.configDir {
		t.Errorf("darwin = %+v", p)
	}
	env = map[string]string{"HOME": "/home/ada", "XDG_DATA_HOME": "/data/ada", "XDG_CONFIG_HOME": "relative/ignored"}
	if p := defaultPaths("linux", get); p.configDir != "/home/ada/.config/usage-scraper" || p.dataDir != "/data/ada/usage-scraper" {
		t.Errorf("linux = %+v", p)
	}
}

func TestStatusShowsOutboxErrorAndStats(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "outbox")
	ob, err := outbox.Open(dir, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	for i := range 3 {
		if _, err := ob.Put(shared.Snapshot{ScrapedAt: now.Add(time.Duration(i-10) * time.Minute), Capture: "api",
			Meters: []shared.Meter{{ID: "session", Label: "Current session", PercentUsed: 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	tr, err := upload.OpenTracker(stateFile(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.RecordSync(upload.SyncRecord{At: now.Add(-20 * time.Minute), OK: true, Attempts: 1, DurationMs: 40}, "")
	tr.RecordSync(upload.SyncRecord{At: now.Add(-15 * time.Minute), OK: true, Attempts: 2, DurationMs: 10040}, "")
	tr.RecordSync(upload.SyncRecord{At: now.Add(-10 * time.Minute), OK: false, Attempts: 4, DurationMs: 70100, Category: shared.CategoryNetwork},
		"sync: NETWORK after 4 attempt(s): connection refused")
	tr.RecordScrape(upload.ScrapeRecord{At: now.Add(-5 * time.Minute), OK: false, Category: string(shared.ScrapeNotLoggedIn), Message: "redirected to login"})

	d := testDeps(t, map[string]string{"HOME": t.TempDir()})
	r := runCLI(t, d, "status", "--outbox-dir", dir)
	if r.code != 0 {
		t.Fatalf("status exit = %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"outbox:        3 snapshot(s) waiting in " + dir,
		"last success:  ",
		"last error:    ", "scrape NOT_LOGGED_IN: redirected to login",
		"next step: " + scrapeerr.NotLoggedIn.NextStep(),
		"sync stats:    last 3 syncs: success 67%, retried 67%, duration min 40ms / avg 26.726s / max 1m10.1s",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runCLI(t, d, "status", "--outbox-dir", dir, "--json")
	var rep statusReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
		t.Fatalf("status --json = %d %q: %v", r.code, r.stdout, err)
	}
	if rep.Outbox.Pending != 3 || rep.Stats.Syncs != 3 || rep.State.LastError.Category != string(shared.ScrapeNotLoggedIn) {
		t.Errorf("status --json = %+v", rep)
	}
	// camelCase names, as everywhere on the wire.
	for _, want := range []string{`"dir":`, `"pending": 3`, `"rejected": 0`, `"oldest": "`, `"lastSuccess": "`, `"successRate":`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status --json lacks %s:\n%s", want, r.stdout)
		}
	}
	for _, bad := range []string{`"Dir"`, `"Pending"`, `"Oldest"`} {
		if strings.Contains(r.stdout, bad) {
			t.Errorf("status --json has the Go name %s:\n%s", bad, r.stdout)
		}
	}
	// A fresh machine: nothing yet, and nothing created.
	empty := filepath.Join(t.TempDir(), "none")
	r = runCLI(t, d, "status", "--outbox-dir", empty)
	if r.code != 0 || !strings.Contains(r.stdout, "0 snapshot(s) waiting") || !strings.Contains(r.stdout, "last success:  never") ||
		!strings.Contains(r.stdout, "no syncs yet") {
		t.Errorf("empty status = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(empty); !errors.Is(err, os.ErrNotExist) {
		t.Error("status created the outbox directory")
	}
	// Unknown times are left out, not 0001-01-01.
	r = runCLI(t, d, "status", "--outbox-dir", empty, "--json")
	if r.code != 0 || strings.Contains(r.stdout, "0001-01-01") || strings.Contains(r.stdout, `"oldest"`) || strings.Contains(r.stdout, `"lastSuccess"`) {
		t.Errorf("empty status --json = %d\n%s", r.code, r.stdout)
	}
}

func TestInstallLaunchdPrintParses(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	kf := keyFile(t, home)
	d := testDeps(t, map[string]string{"HOME": home, "USAGE_SERVER_URL": "https://usage.example.com", "USAGE_API_KEY": "env-secret"})
	d.goos = "darwin"
	r := runCLI(t, d, "install-launchd", "--print", "--api-key-file", kf, "--account", "work", "--interval", "10m")
	if r.code != 0 {
		t.Fatalf("exit = %d: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout, "env-secret") || strings.Contains(r.stdout, "k-0123456789abcdef") {
		t.Fatal("the key is in the plist")
	}
	pl := decodePlist(t, []byte(r.stdout))
	support := filepath.Join(home, "Library", "Application Support", "usage-scraper")
	wantArgs := []string{"/opt/usage/bin/usage-scraper", "run", "--api-key-file", kf, "--account", "work", "--interval", "10m0s",
		"--profile-dir", filepath.Join(support, "chromium-profile"), "--outbox-dir", filepath.Join(support, "outbox")}
	if strings.Join(pl.Args, "\x00") != strings.Join(wantArgs, "\x00") {
		t.Errorf("ProgramArguments = %q\nwant %q", pl.Args, wantArgs)
	}
	if pl.Strings["Label"] != "com.claude-usage.scraper" || pl.Env["USAGE_SERVER_URL"] != "https://usage.example.com" ||
		pl.Strings["StandardErrorPath"] != filepath.Join(home, "Library", "Logs", "usage-scraper", "usage-scraper.log") ||
		!pl.Bools["RunAtLoad"] || !pl.Bools["KeepAlive"] {
		t.Errorf("plist = %+v", pl)
	}
	if _, err := os.Stat(filepath.Join(home, "Library", "LaunchAgents")); !errors.Is(err, os.ErrNotExist) {
		t.Error("--print wrote a file")
	}
}

func TestInstallLaunchdWritesFile(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	kf := keyFile(t, home)
	d := testDeps(t, map[string]string{"HOME": home})
	d.goos = "darwin"
	r := runCLI(t, d, "install-launchd", "--api-key-file", kf, "--label", "com.example.usage")
	if r.code != 0 {
		t.Fatalf("exit = %d: %s", r.code, r.stderr)
	}
	dest := filepath.Join(home, "Library", "LaunchAgents", "com.example.usage.plist")
	raw, err := os.ReadFile(dest)
	if err != nil {
		t.Fatalf("plist not written: %v", err)
	}
	if pl := decodePlist(t, raw); pl.Strings["Label"] != "com.example.usage" {
		t.Errorf("Label = %q", pl.Strings["Label"])
	}
	if !strings.Contains(r.stdout, "launchctl bootstrap gui/$(id -u) \""+dest+"\"") {
		t.Errorf("next steps missing: %s", r.stdout)
	}
	if fi, err := os.Stat(filepath.Join(home, "Library", "Logs", "usage-scraper")); err != nil || !fi.IsDir() {
		t.Errorf("log directory not created: %v", err)
	}
	if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o644 {
		t.Errorf("plist mode = %v, want 0644", fi.Mode().Perm())
	}
}

// The sources chosen at install time reach the service's command line.
func TestInstallCarriesSourceFlags(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	kf := keyFile(t, home)
	d := testDeps(t, map[string]string{"HOME": home})
	d.goos = "darwin"
	r := runCLI(t, d, "install-launchd", "--print", "--api-key-file", kf, "--source", "browser", "--keep-browser",
		"--oauth-url", "https://oauth.example.com", "--cross-check")
	if r.code != 0 {
		t.Fatalf("exit = %d: %s", r.code, r.stderr)
	}
	args := strings.Join(decodePlist(t, []byte(r.stdout)).Args, " ")
	for _, want := range []string{"--source browser", "--keep-browser", "--oauth-url https://oauth.example.com", "--cross-check"} {
		if !strings.Contains(args, want) {
			t.Errorf("ProgramArguments lack %q: %s", want, args)
		}
	}
}

func TestInstallSystemd(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	kf := keyFile(t, home)
	d := testDeps(t, map[string]string{"HOME": home, "USAGE_SERVER_URL": "http://10.0.0.5:8080"})
	r := runCLI(t, d, "install-systemd", "--print", "--api-key-file", kf, "--usage-url", "https://claude.ai/settings/usage?x=1")
	if r.code != 0 {
		t.Fatalf("exit = %d: %s", r.code, r.stderr)
	}
	sections := map[string]map[string]string{}
	cur := ""
	for _, line := range strings.Split(r.stdout, "\n") {
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			cur = strings.Trim(line, "[]")
			sections[cur] = map[string]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || cur == "" {
				t.Fatalf("not key=value in a section: %q", line)
			}
			sections[cur][k] = v
		}
	}
	svc := sections["Service"]
	if want := `"/opt/usage/bin/usage-scraper" "run" "--api-key-file" "` + kf + `"`; !strings.HasPrefix(svc["ExecStart"], want) {
		t.Errorf("ExecStart = %s, want prefix %s", svc["ExecStart"], want)
	}
	if strings.Contains(svc["ExecStart"], "--source") || strings.Contains(svc["ExecStart"], "--keep-browser") {
		t.Errorf("ExecStart names default source settings: %s", svc["ExecStart"])
	}
	if !strings.Contains(svc["ExecStart"], `"--usage-url" "https://claude.ai/settings/usage?x=1"`) {
		t.Errorf("ExecStart lacks the custom usage URL: %s", svc["ExecStart"])
	}
	if svc["Environment"] != `"USAGE_SERVER_URL=http://10.0.0.5:8080"` || sections["Install"]["WantedBy"] != "default.target" {
		t.Errorf("unit = %+v", sections)
	}
	r = runCLI(t, d, "install-systemd", "--api-key-file", kf)
	dest := filepath.Join(home, ".config", "systemd", "user", "usage-scraper.service")
	if raw, err := os.ReadFile(dest); r.code != 0 || err != nil || !bytes.Contains(raw, []byte("ExecStart=")) {
		t.Fatalf("install-systemd = %d (%s), file: %v", r.code, r.stderr, err)
	}
	if !strings.Contains(r.stdout, "systemctl --user enable --now usage-scraper.service") || !strings.Contains(r.stdout, "journalctl --user -u usage-scraper") {
		t.Errorf("next steps = %s", r.stdout)
	}
}

// plistDoc is the part of a LaunchAgent plist the tests look at.
type plistDoc struct {
	Strings map[string]string
	Bools   map[string]bool
	Args    []string
	Env     map[string]string
}

// decodePlist reads the top-level dict of a plist with encoding/xml.
func decodePlist(t *testing.T, data []byte) plistDoc {
	t.Helper()
	var doc struct {
		XMLName xml.Name `xml:"plist"`
		Dict    struct {
			Items []struct {
				XMLName xml.Name
				Text    string   `xml:",chardata"`
				Strings []string `xml:"string"`
				Keys    []string `xml:"key"`
			} `xml:",any"`
		} `xml:"dict"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("plist does not parse: %v\n%s", err, data)
	}
	if !bytes.Contains(data, []byte(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN"`)) {
		t.Error("plist lacks its DOCTYPE")
	}
	p := plistDoc{Strings: map[string]string{}, Bools: map[string]bool{}, Env: map[string]string{}}
	items := doc.Dict.Items
	for i := 0; i+1 < len(items); i += 2 {
		if items[i].XMLName.Local != "key" {
			t.Fatalf("dict item %d is <%s>, want <key>", i, items[i].XMLName.Local)
		}
		k, v := items[i].Text, items[i+1]
		switch v.XMLName.Local {
		case "string":
			p.Strings[k] = v.Text
		case "true", "false":
			p.Bools[k] = v.XMLName.Local == "true"
		case "array":
			p.Args = v.Strings
		case "dict":
			for j := range v.Keys {
				p.Env[v.Keys[j]] = v.Strings[j]
			}
		}
	}
	return p
}

func TestFailExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want int
	}{
		{scrapeerr.New(scrapeerr.NotLoggedIn, nil, "x"), 3},
		{scrapeerr.New(scrapeerr.Challenge, nil, "x"), 4},
		{scrapeerr.New(scrapeerr.LayoutChanged, nil, "x"), 5},
		{scrapeerr.New(scrapeerr.Browser, nil, "x"), 6},
		{scrapeerr.New(scrapeerr.Network, nil, "x"), 7},
		{scrapeerr.New(scrapeerr.Unknown, nil, "x"), 1},
		{usagef("bad"), 2},
		{errors.New("other"), 1},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			var errb bytes.Buffer
			e := &cmdEnv{name: "once", stderr: &errb}
			if got := e.fail(tc.err); got != tc.want {
				t.Errorf("exit = %d, want %d", got, tc.want)
			}
			if !strings.HasPrefix(errb.String(), "usage-scraper once: ") {
				t.Errorf("stderr = %q", errb.String())
			}
			var se *scrapeerr.Error
			if errors.As(tc.err, &se) && !strings.Contains(errb.String(), "next step: "+se.Class.NextStep()) {
				t.Errorf("no next step in %q", errb.String())
			}
		})
	}
}

func TestLogFormat(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	for _, tc := range []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		want     string // in stderr
	}{
		{"auto on a pipe is JSON", nil, nil, 0, `"msg":"`},
		{"text", nil, []string{"--log-format", "text"}, 0, "level=WARN msg="},
		{"env json", map[string]string{"USAGE_LOG_FORMAT": "json"}, nil, 0, `"level":"WARN"`},
		{"bad format", nil, []string{"--log-format", "xml"}, scrapeerr.ExitUsage, `--log-format "xml" must be auto, json or text`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A key file others can read makes the command log a warning,
			// so there is a line to look at.
			kf := filepath.Join(t.TempDir(), "api-key")
			if err := os.WriteFile(kf, []byte("k-0123456789abcdef\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"HOME": home}
			for k, v := range tc.env {
				env[k] = v
			}
			args := append([]string{"status", "--outbox-dir", filepath.Join(t.TempDir(), "ob"), "--api-key-file", kf}, tc.args...)
			r := runCLI(t, testDeps(t, env), args...)
			if r.code != tc.wantCode {
				t.Fatalf("exit = %d, want %d\nstderr: %s", r.code, tc.wantCode, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tc.want)
			}
			if tc.wantCode == 0 && !strings.Contains(r.stderr, "readable by others") {
				t.Errorf("no warning about the key file's mode in %q", r.stderr)
			}
		})
	}
}

// The README's configuration table and --help list the same flags with the
// same variables.
func TestREADMETableMatchesHelp(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(testutil.MustRepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(raw)
	start := strings.Index(section, "### usage-scraper")
	if start < 0 {
		t.Fatal("README has no usage-scraper section")
	}
	section = section[start:]
	if end := strings.Index(section[1:], "\n#"); end > 0 {
		section = section[:end+1]
	}
	readme := map[string]string{} // flag → env
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.Contains(cells[1], "`--") {
			continue
		}
		flags, envs := strings.Split(cells[1], "/"), strings.Split(cells[2], "/")
		for i, f := range flags {
			env := ""
			if i < len(envs) {
				env = strings.Trim(strings.TrimSpace(envs[i]), "`")
			}
			readme[strings.Trim(strings.TrimSpace(f), "`")] = env
		}
	}
	f := config.New("run", func(string) string { return "" })
	var c settings
	common(f, &c, defaultPaths("linux", func(string) string { return "" }), false)
	sourceFlags(f, &c)
	help := map[string]string{}
	for _, d := range f.Docs() {
		help["--"+d.Name] = d.Env
	}
	if !reflect.DeepEqual(readme, help) {
		t.Errorf("README table (flag → env) = %v\n--help = %v", readme, help)
	}
}

// `status` says when the server URL did not answer like a usage-server,
// and when snapshots were dropped.
func TestStatusSaysNotUsageServerAndDropped(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "outbox")
	tr, err := upload.OpenTracker(stateFile(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	tr.RecordSync(upload.SyncRecord{At: now.Add(-2 * time.Minute), OK: false, Attempts: 4, Category: shared.CategoryServer, NotUsageServer: true},
		"sync: POST http://portal.example/api/claude/console-usage answered HTTP 200 (text/html)")
	tr.RecordDropped(now.Add(-time.Minute), "2 snapshot(s) dropped, neither stored nor sent: the outbox directory cannot be written")
	r := runCLI(t, testDeps(t, map[string]string{"HOME": t.TempDir()}), "status", "--outbox-dir", dir)
	for _, want := range []string{"server:        the server URL does not answer like a usage-server", "answered HTTP 200 (text/html)",
		"dropped:       ", "2 snapshot(s) dropped"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runCLI(t, testDeps(t, map[string]string{"HOME": t.TempDir()}), "status", "--outbox-dir", dir, "--json")
	if !strings.Contains(r.stdout, `"notUsageServer": {`) || !strings.Contains(r.stdout, `"dropped": {`) {
		t.Errorf("status --json lacks notUsageServer and dropped:\n%s", r.stdout)
	}
}
