package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/claude-usage/widget/internal/config"
	"github.com/claude-usage/widget/scraper/install"
	"github.com/claude-usage/widget/scraper/oauth"
	"github.com/claude-usage/widget/scraper/scrapeerr"
)

// deps are the parts that touch the machine; Run uses the real ones.
type deps struct {
	getenv     func(string) string
	goos       string
	executable func() (string, error)
	newBrowser func(ctx context.Context, o BrowserOptions) (Browser, error)
	keychain   oauth.Keychain // nil: macOS's security command
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

const overview = `usage-scraper reads your Claude plan usage and sends it to usage-server: from
Claude Code's OAuth login when it exists (--source auto, the default), else
from claude.ai/settings/usage in a logged-in Chromium profile, which is started
for each scrape and closed after it. Unsent snapshots wait in a durable
outbox; nothing is lost when the server is down.

Usage: usage-scraper <command> [flags]

Commands:
  login             open a visible Chromium window on the profile; sign in to claude.ai there
  once              scrape once and sync; --dry-run prints the snapshot JSON and posts nothing
  run               scrape every --interval, sync, drain the outbox, until SIGTERM/Ctrl-C;
                    --demo scrapes a bundled sample page on 127.0.0.1 instead of claude.ai
  status            outbox size, last success, last error and its category, sync statistics,
                    the source used last and each source's last success and error
  statusline        Claude Code's statusLine command: prints "5h 42% ↻16:00 · 7d 18% ↻Thu"
                    and queues that reading for run (no network)
  doctor            checks each source, Chromium, the profile and the server; says what to fix
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
	var cfg settings
	f := config.New(cmd, d.getenv)
	c.flags(f, &cfg, p)
	header := fmt.Sprintf("usage-scraper %s: %s\n\nUsage: usage-scraper %s [flags]", cmd, c.summary, cmd)
	if err := f.Parse(rest, stdout, header, ""); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return scrapeerr.ExitOK
		}
		fmt.Fprintf(stderr, "usage-scraper %s: %v\n", cmd, err)
		return scrapeerr.ExitUsage
	}
	check := cfg.check
	if c.check != nil {
		check = func() error { return c.check(&cfg) }
	}
	if err := check(); err != nil {
		fmt.Fprintf(stderr, "usage-scraper %s: %v\n", cmd, err)
		return scrapeerr.ExitUsage
	}
	level, _ := config.ParseLevel(cfg.LogLevel)
	format, _ := config.ParseFormat(cfg.LogFormat)
	log := slog.New(config.Handler(stderr, format, config.IsTerminal(stderr), &slog.HandlerOptions{Level: level}))
	for _, w := range f.Warnings {
		log.Warn(w, "component", "cli")
	}
	env := &cmdEnv{ctx: ctx, d: d, cfg: cfg, paths: p, log: log, stdin: stdin, stdout: stdout, stderr: stderr, name: cmd}
	code := c.run(env)
	return code
}

// cmdEnv is what a command runs with.
type cmdEnv struct {
	ctx            context.Context
	d              deps
	cfg            settings
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
		fmt.Fprintf(e.stderr, "usage-scraper %s: %v\nnext step: %s\n", e.name, err, se.NextStep())
		return scrapeerr.ExitCode(se.Class)
	}
	fmt.Fprintf(e.stderr, "usage-scraper %s: %v\n", e.name, err)
	return scrapeerr.ExitOther
}

type command struct {
	summary string
	flags   func(f *config.Set, c *settings, p paths)
	run     func(e *cmdEnv) int
	// check replaces settings.check for a command with flags of its own.
	check func(c *settings) error
}

var commands = map[string]command{
	"run": {"scrape every --interval, sync and drain the outbox until stopped", func(f *config.Set, c *settings, p paths) {
		common(f, c, p, false)
		sourceFlags(f, c)
		f.Bool(&c.Demo, "demo", "", false, "scrape the bundled sample usage page served on 127.0.0.1 (for make run)")
	}, cmdRun, nil},
	"once": {"scrape once and sync (exit codes: see usage-scraper --help)", func(f *config.Set, c *settings, p paths) {
		common(f, c, p, false)
		sourceFlags(f, c)
		f.Bool(&c.DryRun, "dry-run", "", false, "print the snapshot JSON on stdout and post nothing")
	}, cmdOnce, nil},
	"login": {"open a visible Chromium window on the profile to sign in to claude.ai", func(f *config.Set, c *settings, p paths) {
		common(f, c, p, false)
	}, cmdLogin, nil},
	"status": {"show the outbox, the last success and error, and sync statistics", func(f *config.Set, c *settings, p paths) {
		common(f, c, p, false)
		f.Bool(&c.JSON, "json", "", false, "print the status as JSON")
	}, cmdStatus, nil},
	"statusline": {"read Claude Code's statusline JSON on stdin, print one line, queue a snapshot (at most once a minute)",
		statuslineFlags, cmdStatusline, checkStatusline},
	"doctor": {"check every source, Chromium, the profile and the server, and say what to do about each problem", func(f *config.Set, c *settings, p paths) {
		common(f, c, p, false)
		sourceFlags(f, c)
	}, cmdDoctor, nil},
	"install-launchd": {"write a LaunchAgent plist that runs `usage-scraper run` at login", func(f *config.Set, c *settings, p paths) {
		common(f, c, p, true)
		sourceFlags(f, c)
		installFlags(f, c, filepath.Join(p.home, "Library", "Logs", appDir))
		f.String(&c.Label, "label", "", install.DefaultLabel, "LaunchAgent label (also the plist's file name)")
	}, cmdInstallLaunchd, nil},
	"install-systemd": {"write a systemd user unit that runs `usage-scraper run`", func(f *config.Set, c *settings, p paths) {
		common(f, c, p, true)
		sourceFlags(f, c)
		installFlags(f, c, "")
	}, cmdInstallSystemd, nil},
}

func installFlags(f *config.Set, c *settings, logDir string) {
	f.Bool(&c.Print, "print", "", false, "write the file to stdout instead of installing it")
	f.String(&c.Program, "program", "", "", "absolute path of usage-scraper in the file (default: this binary)")
	doc := "directory for the service's log files"
	if logDir == "" {
		doc += " (empty: the systemd journal)"
	}
	f.String(&c.LogDir, "log-dir", "", logDir, doc)
}
