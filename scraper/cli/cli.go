package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/claude-usage/widget/scraper/install"
	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/runner"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

// Browser is what the commands need from the Chromium side.
type Browser interface {
	runner.Scraper
	Login(ctx context.Context, usageURL string) error
	Close() error
}

// BrowserOptions configures a Browser.
type BrowserOptions struct {
	ChromePath  string
	ProfileDir  string
	Headless    bool
	PageTimeout time.Duration
	Logger      *slog.Logger
}

// deps are the parts that touch the machine; Run uses the real ones.
type deps struct {
	getenv     func(string) string
	goos       string
	executable func() (string, error)
	newBrowser func(ctx context.Context, o BrowserOptions) (Browser, error)
	startDemo  func(ctx context.Context, addr string) (usageURL string, err error)
}

func realDeps() deps {
	return deps{getenv: os.Getenv, goos: runtime.GOOS, executable: os.Executable,
		newBrowser: newRealBrowser, startDemo: startRealDemo}
}

// Run executes the command line args (without the program name) and
// returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, realDeps(), args, stdin, stdout, stderr)
}

const overview = `usage-scraper reads your Claude plan usage from claude.ai/settings/usage in a
logged-in Chromium profile and sends it to usage-server. Unsent snapshots wait
in a durable outbox; nothing is lost when the server is down.

Usage: usage-scraper <command> [flags]

Commands:
  login             open a visible Chromium window on the profile; sign in to claude.ai there
  once              scrape once and sync; --dry-run prints the snapshot JSON and posts nothing
  run               scrape every --interval, sync, drain the outbox, until SIGTERM/Ctrl-C;
                    --demo scrapes a bundled sample page on 127.0.0.1 instead of claude.ai
  status            outbox size, last success, last error and its category, sync statistics
  install-launchd   write a LaunchAgent (macOS) to ~/Library/LaunchAgents, or stdout with --print
  install-systemd   write a systemd user unit (Linux) to ~/.config/systemd/user, or stdout with --print

Run "usage-scraper <command> --help" for the flags of a command. Every flag can
also be set by its environment variable; a flag wins.

Exit codes of once (and of the other commands where they apply):
  0 ok (a partial snapshot included)   1 other failure, or the sync failed (the snapshot
  2 bad usage                            stays in the outbox and is sent later)
  3 NOT_LOGGED_IN   4 CHALLENGE   5 LAYOUT_CHANGED   6 BROWSER   7 NETWORK`

func run(ctx context.Context, d deps, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, overview)
		return scrapeerr.ExitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, overview)
		return scrapeerr.ExitOK
	}
	c, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "usage-scraper: unknown command %q\n\n%s\n", cmd, overview)
		return scrapeerr.ExitUsage
	}
	p := defaultPaths(d.goos, d.getenv)
	var cfg config
	f := newFlags(cmd, d.getenv)
	c.flags(f, &cfg, p)
	header := fmt.Sprintf("usage-scraper %s: %s\n\nUsage: usage-scraper %s [flags]", cmd, c.summary, cmd)
	if err := f.parse(rest, stdout, header); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return scrapeerr.ExitOK
		}
		fmt.Fprintf(stderr, "usage-scraper %s: %v\n", cmd, err)
		return scrapeerr.ExitUsage
	}
	if err := cfg.check(); err != nil {
		fmt.Fprintf(stderr, "usage-scraper %s: %v\n", cmd, err)
		return scrapeerr.ExitUsage
	}
	level, _ := parseLevel(cfg.LogLevel)
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	env := &cmdEnv{ctx: ctx, d: d, cfg: cfg, paths: p, log: log, stdin: stdin, stdout: stdout, stderr: stderr, name: cmd}
	code := c.run(env)
	return code
}

// cmdEnv is what a command runs with.
type cmdEnv struct {
	ctx            context.Context
	d              deps
	cfg            config
	paths          paths
	log            *slog.Logger
	stdin          io.Reader
	stdout, stderr io.Writer
	name           string
}

// fail prints err for the user and returns its exit code.
func (e *cmdEnv) fail(err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "usage-scraper %s: %v\n", e.name, err)
		return scrapeerr.ExitUsage
	}
	var se *scrapeerr.Error
	if errors.As(err, &se) {
		fmt.Fprintf(e.stderr, "usage-scraper %s: %v\nnext step: %s\n", e.name, err, se.Class.NextStep())
		return se.Class.ExitCode()
	}
	fmt.Fprintf(e.stderr, "usage-scraper %s: %v\n", e.name, err)
	return scrapeerr.ExitOther
}

type command struct {
	summary string
	flags   func(f *flags, c *config, p paths)
	run     func(e *cmdEnv) int
}

var commands = map[string]command{
	"run": {"scrape every --interval, sync and drain the outbox until stopped", func(f *flags, c *config, p paths) {
		f.common(c, p)
		f.boolean(&c.Demo, "demo", "", false, "scrape the bundled sample usage page served on 127.0.0.1 (for make run)")
	}, cmdRun},
	"once": {"scrape once and sync (exit codes: see usage-scraper --help)", func(f *flags, c *config, p paths) {
		f.common(c, p)
		f.boolean(&c.DryRun, "dry-run", "", false, "print the snapshot JSON on stdout and post nothing")
	}, cmdOnce},
	"login": {"open a visible Chromium window on the profile to sign in to claude.ai", func(f *flags, c *config, p paths) {
		f.common(c, p)
	}, cmdLogin},
	"status": {"show the outbox, the last success and error, and sync statistics", func(f *flags, c *config, p paths) {
		f.common(c, p)
		f.boolean(&c.JSON, "json", "", false, "print the status as JSON")
	}, cmdStatus},
	"install-launchd": {"write a LaunchAgent plist that runs `usage-scraper run` at login", func(f *flags, c *config, p paths) {
		f.common(c, p)
		installFlags(f, c, filepath.Join(p.home, "Library", "Logs", appDir))
		f.str(&c.Label, "label", "", install.DefaultLabel, "LaunchAgent label (also the plist's file name)")
	}, cmdInstallLaunchd},
	"install-systemd": {"write a systemd user unit that runs `usage-scraper run`", func(f *flags, c *config, p paths) {
		f.common(c, p)
		installFlags(f, c, "")
	}, cmdInstallSystemd},
}

func installFlags(f *flags, c *config, logDir string) {
	f.boolean(&c.Print, "print", "", false, "write the file to stdout instead of installing it")
	f.str(&c.Program, "program", "", "", "absolute path of usage-scraper in the file (default: this binary)")
	doc := "directory for the service's log files"
	if logDir == "" {
		doc += " (empty: the systemd journal)"
	}
	f.str(&c.LogDir, "log-dir", "", logDir, doc)
}

// lazyBrowser starts Chromium at the first scrape rather than at start-up,
// so that `run` with Chromium missing keeps running, reports BROWSER to the
// server (the widget says why data stopped) and picks Chromium up once it
// is installed. Once started, the browser restarts a crashed Chromium
// itself and reuses its tab.
type lazyBrowser struct {
	d    deps
	opts BrowserOptions
	mu   sync.Mutex
	b    Browser
}

func (l *lazyBrowser) get(ctx context.Context) (Browser, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b != nil {
		return l.b, nil
	}
	b, err := l.d.newBrowser(ctx, l.opts)
	if err != nil {
		if scrapeerr.ClassOf(err) == scrapeerr.Unknown && ctx.Err() == nil {
			err = scrapeerr.New(scrapeerr.Browser, err, "starting Chromium")
		}
		return nil, err
	}
	l.b = b
	return b, nil
}

func (l *lazyBrowser) Scrape(ctx context.Context, usageURL string) (shared.Snapshot, error) {
	b, err := l.get(ctx)
	if err != nil {
		return shared.Snapshot{}, err
	}
	return b.Scrape(ctx, usageURL)
}

func (l *lazyBrowser) Close() error {
	l.mu.Lock()
	b := l.b
	l.b = nil
	l.mu.Unlock()
	if b != nil {
		return b.Close()
	}
	return nil
}

func (e *cmdEnv) browser(headless bool) *lazyBrowser {
	return &lazyBrowser{d: e.d, opts: BrowserOptions{ChromePath: e.cfg.ChromePath, ProfileDir: e.cfg.ProfileDir,
		Headless: headless, PageTimeout: e.cfg.PageTimeout, Logger: e.log}}
}

// syncParts opens the outbox, the statistics and the client.
func (e *cmdEnv) syncParts() (*outbox.Outbox, *upload.Client, error) {
	key, err := e.cfg.key()
	if err != nil {
		return nil, nil, err
	}
	ob, err := outbox.Open(e.cfg.OutboxDir, outbox.Options{Logger: e.log})
	if err != nil {
		return nil, nil, err
	}
	tr, err := upload.OpenTracker(stateFile(e.cfg.OutboxDir), e.log)
	if err != nil {
		return nil, nil, err
	}
	client := &upload.Client{ServerURL: e.cfg.Server, APIKey: key, Logger: e.log, Verbose: e.cfg.Verbose, Tracker: tr}
	return ob, client, nil
}

func cmdRun(e *cmdEnv) int {
	usageURL := e.cfg.UsageURL
	if e.cfg.Demo {
		u, err := e.d.startDemo(e.ctx, "127.0.0.1:0")
		if err != nil {
			return e.fail(fmt.Errorf("starting the demo usage page: %w", err))
		}
		usageURL = u
		e.log.Info("demo mode: scraping the bundled sample page", "component", "cli", "usageUrl", u)
	}
	ob, client, err := e.syncParts()
	if err != nil {
		return e.fail(err)
	}
	br := e.browser(e.cfg.Headless)
	defer br.Close()
	r, err := runner.New(runner.Config{Scraper: br, Outbox: ob, Client: client, UsageURL: usageURL,
		Account: e.cfg.Account, Interval: e.cfg.Interval, Logger: e.log})
	if err != nil {
		return e.fail(err)
	}
	if err := r.Run(e.ctx); err != nil {
		return e.fail(err)
	}
	return scrapeerr.ExitOK
}

func cmdOnce(e *cmdEnv) int {
	br := e.browser(e.cfg.Headless)
	defer br.Close()
	if e.cfg.DryRun {
		snap, err := br.Scrape(e.ctx, e.cfg.UsageURL)
		if err != nil {
			return e.fail(err)
		}
		snap.Account = e.cfg.Account
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(snap); err != nil {
			return e.fail(fmt.Errorf("writing the snapshot: %w", err))
		}
		return scrapeerr.ExitOK
	}
	ob, client, err := e.syncParts()
	if err != nil {
		return e.fail(err)
	}
	r, err := runner.New(runner.Config{Scraper: br, Outbox: ob, Client: client, UsageURL: e.cfg.UsageURL,
		Account: e.cfg.Account, Interval: e.cfg.Interval, Logger: e.log})
	if err != nil {
		return e.fail(err)
	}
	res := r.Cycle(e.ctx)
	if res.ScrapeErr != nil {
		code := e.fail(res.ScrapeErr)
		if res.Drain.Err != nil {
			fmt.Fprintf(e.stderr, "also: %v\n", res.Drain.Err)
		}
		return code
	}
	if res.Drain.Err != nil {
		fmt.Fprintf(e.stderr, "usage-scraper once: sync failed: %v\nthe snapshot is kept in %s and sent by the next run or once (%d waiting)\n",
			res.Drain.Err, ob.Dir(), res.Drain.Remaining)
		return scrapeerr.ExitOther
	}
	fmt.Fprintf(e.stdout, "synced: %d meter(s) scraped at %s; sent %d snapshot(s), %d rejected, %d waiting\n",
		len(res.Snapshot.Meters), res.Snapshot.ScrapedAt.Format(time.RFC3339), res.Drain.Sent, res.Drain.Rejected, res.Drain.Remaining)
	return scrapeerr.ExitOK
}

func cmdLogin(e *cmdEnv) int {
	if err := os.MkdirAll(e.cfg.ProfileDir, 0o700); err != nil {
		return e.fail(fmt.Errorf("creating the profile directory: %w", err))
	}
	fmt.Fprintf(e.stdout, "A Chromium window opens on %s.\nSign in to claude.ai there; this ends when the usage page loads signed in.\n", e.cfg.UsageURL)
	br := e.browser(false)
	defer br.Close()
	b, err := br.get(e.ctx)
	if err != nil {
		return e.fail(err)
	}
	if err := b.Login(e.ctx, e.cfg.UsageURL); err != nil {
		return e.fail(err)
	}
	fmt.Fprintf(e.stdout, "Signed in. The profile in %s now holds the login; run `usage-scraper once --dry-run` to check.\n", e.cfg.ProfileDir)
	return scrapeerr.ExitOK
}

// statusReport is the JSON of `status --json`.
type statusReport struct {
	Outbox outbox.Info  `json:"outbox"`
	State  upload.State `json:"state"`
	Stats  upload.Stats `json:"stats"`
	Error  string       `json:"error,omitempty"`
}

func cmdStatus(e *cmdEnv) int {
	info, err := outbox.Inspect(e.cfg.OutboxDir)
	if err != nil {
		return e.fail(err)
	}
	st, err := upload.ReadState(stateFile(e.cfg.OutboxDir))
	code := scrapeerr.ExitOK
	rep := statusReport{Outbox: info, State: st, Stats: st.Stats()}
	if err != nil {
		rep.Error = err.Error()
		code = scrapeerr.ExitOther
	}
	if e.cfg.JSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return code
	}
	w := e.stdout
	now := time.Now()
	ago := func(t time.Time) string {
		return fmt.Sprintf("%s (%s ago)", t.Local().Format("2006-01-02 15:04:05 MST"), now.Sub(t).Round(time.Second))
	}
	fmt.Fprintf(w, "outbox:        %d snapshot(s) waiting in %s\n", info.Pending, info.Dir)
	if info.Pending > 0 {
		fmt.Fprintf(w, "               oldest scraped %s\n", ago(info.Oldest))
	}
	if info.Rejected > 0 || info.Corrupt > 0 {
		fmt.Fprintf(w, "               %d rejected by the server (in rejected/), %d unreadable (in corrupt/)\n", info.Rejected, info.Corrupt)
	}
	if st.LastSuccess != nil {
		fmt.Fprintf(w, "last success:  %s\n", ago(*st.LastSuccess))
	} else {
		fmt.Fprintln(w, "last success:  never")
	}
	if le := st.LastError; le != nil {
		fmt.Fprintf(w, "last error:    %s %s %s: %s\n", ago(le.At), le.Kind, le.Category, le.Message)
		if next := scrapeerr.Class(le.Category).NextStep(); le.Kind == "scrape" {
			fmt.Fprintf(w, "               next step: %s\n", next)
		}
	} else {
		fmt.Fprintln(w, "last error:    none")
	}
	if ls := st.LastScrape; ls != nil {
		fmt.Fprintf(w, "last scrape:   %s %s\n", ago(ls.At), ls.Category)
	}
	s := rep.Stats
	if s.Syncs == 0 {
		fmt.Fprintln(w, "sync stats:    no syncs yet")
	} else {
		fmt.Fprintf(w, "sync stats:    last %d syncs: success %.0f%%, retried %.0f%%, duration min %s / avg %s / max %s\n",
			s.Syncs, 100*s.SuccessRate, 100*s.RetryRate, ms(s.MinMs), ms(s.AvgMs), ms(s.MaxMs))
	}
	if rep.Error != "" {
		fmt.Fprintf(e.stderr, "usage-scraper status: %s\n", rep.Error)
	}
	return code
}

func ms(v int64) string { return (time.Duration(v) * time.Millisecond).String() }

// serviceOptions builds the install options shared by launchd and systemd.
func (e *cmdEnv) serviceOptions() (install.Options, error) {
	c := e.cfg
	if c.APIKeyFile == "" {
		if c.APIKey != "" {
			return install.Options{}, usagef("pass the key as --api-key-file: a key written into the service file is readable by every process of the user")
		}
		return install.Options{}, usagef("--api-key-file is required: the service reads the write key from it")
	}
	abs := func(p string) (string, error) {
		if p == "" {
			return "", nil
		}
		a, err := filepath.Abs(p)
		if err != nil {
			return "", fmt.Errorf("resolving %s: %w", p, err)
		}
		return a, nil
	}
	keyFile, err := abs(c.APIKeyFile)
	if err != nil {
		return install.Options{}, err
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.IsDir() {
		return install.Options{}, usagef("--api-key-file %s must be a readable file: %v", keyFile, err)
	}
	prog := c.Program
	if prog == "" {
		if prog, err = e.d.executable(); err != nil {
			return install.Options{}, fmt.Errorf("finding this binary (pass --program): %w", err)
		}
		if r, err := filepath.EvalSymlinks(prog); err == nil {
			prog = r
		}
	}
	if !filepath.IsAbs(prog) {
		return install.Options{}, usagef("--program %q must be an absolute path", prog)
	}
	profile, err := abs(c.ProfileDir)
	if err != nil {
		return install.Options{}, err
	}
	ob, err := abs(c.OutboxDir)
	if err != nil {
		return install.Options{}, err
	}
	args := []string{"run", "--api-key-file", keyFile, "--account", c.Account, "--interval", c.Interval.String(),
		"--profile-dir", profile, "--outbox-dir", ob}
	if c.UsageURL != DefaultUsageURL {
		args = append(args, "--usage-url", c.UsageURL)
	}
	if c.ChromePath != "" {
		args = append(args, "--chrome-path", c.ChromePath)
	}
	if !c.Headless {
		args = append(args, "--headless=false")
	}
	if c.LogLevel != "info" {
		args = append(args, "--log-level", c.LogLevel)
	}
	o := install.Options{Program: prog, Args: args, Env: map[string]string{"USAGE_SERVER_URL": c.Server}}
	if c.LogDir != "" {
		dir, err := abs(c.LogDir)
		if err != nil {
			return install.Options{}, err
		}
		o.StdoutPath, o.StderrPath = filepath.Join(dir, "usage-scraper.out.log"), filepath.Join(dir, "usage-scraper.log")
	}
	return o, nil
}

func cmdInstallLaunchd(e *cmdEnv) int {
	o, err := e.serviceOptions()
	if err != nil {
		return e.fail(err)
	}
	if o.StdoutPath == "" {
		return e.fail(usagef("--log-dir must not be empty: launchd writes the logs to files"))
	}
	o.Label = e.cfg.Label
	data, err := install.LaunchdPlist(o)
	if err != nil {
		return e.fail(usagef("%v", err))
	}
	if e.cfg.Print {
		_, _ = e.stdout.Write(data)
		return scrapeerr.ExitOK
	}
	dest := filepath.Join(e.paths.home, "Library", "LaunchAgents", o.Label+".plist")
	if err := writeServiceFile(dest, data, filepath.Dir(o.StdoutPath)); err != nil {
		return e.fail(err)
	}
	fmt.Fprintf(e.stdout, `wrote %s
start it now (and at every login):
  launchctl bootstrap gui/$(id -u) %q
after editing the file:
  launchctl bootout gui/$(id -u)/%s; launchctl bootstrap gui/$(id -u) %q
logs:
  tail -f %q
check:
  %s status
`, dest, dest, o.Label, dest, o.StderrPath, o.Program)
	return scrapeerr.ExitOK
}

func cmdInstallSystemd(e *cmdEnv) int {
	o, err := e.serviceOptions()
	if err != nil {
		return e.fail(err)
	}
	data, err := install.SystemdUserUnit(o)
	if err != nil {
		return e.fail(usagef("%v", err))
	}
	if e.cfg.Print {
		_, _ = e.stdout.Write(data)
		return scrapeerr.ExitOK
	}
	cfgHome := e.d.getenv("XDG_CONFIG_HOME")
	if cfgHome == "" || !filepath.IsAbs(cfgHome) {
		cfgHome = filepath.Join(e.paths.home, ".config")
	}
	dest := filepath.Join(cfgHome, "systemd", "user", install.DefaultUnitName)
	logDir := ""
	if o.StderrPath != "" {
		logDir = filepath.Dir(o.StderrPath)
	}
	if err := writeServiceFile(dest, data, logDir); err != nil {
		return e.fail(err)
	}
	logs := "journalctl --user -u usage-scraper -f"
	if o.StderrPath != "" {
		logs = fmt.Sprintf("tail -f %q", o.StderrPath)
	}
	fmt.Fprintf(e.stdout, `wrote %s
start it now (and with every session):
  systemctl --user daemon-reload && systemctl --user enable --now %s
logs:
  %s
check:
  %s status
`, dest, install.DefaultUnitName, logs, o.Program)
	return scrapeerr.ExitOK
}

// writeServiceFile writes a service file atomically (0644: launchd and
// systemd read it; it holds no key) and creates the log directory, which
// neither service manager creates.
func writeServiceFile(dest string, data []byte, logDir string) error {
	if logDir != "" {
		if err := os.MkdirAll(logDir, 0o700); err != nil {
			return fmt.Errorf("creating the log directory: %w", err)
		}
	}
	dir := filepath.Dir(dest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(dest)+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(0o644)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, dest)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", dest, werr)
	}
	return nil
}
