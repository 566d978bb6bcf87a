package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/claude-usage/widget/shared"
)

// Defaults of the flags.
const (
	DefaultServer      = "http://127.0.0.1:8080"
	DefaultUsageURL    = "https://claude.ai/settings/usage"
	DefaultInterval    = 5 * time.Minute
	DefaultPageTimeout = 60 * time.Second
	minInterval        = 10 * time.Second
	appDir             = "usage-scraper"
)

// config is every flag of every command; each command registers the ones
// it reads.
type config struct {
	Server      string
	APIKey      string
	APIKeyFile  string
	UsageURL    string
	ProfileDir  string
	OutboxDir   string
	Account     string
	ChromePath  string
	Headless    bool
	Interval    time.Duration
	PageTimeout time.Duration
	LogLevel    string
	Verbose     bool

	Demo    bool   // run
	DryRun  bool   // once
	JSON    bool   // status
	Print   bool   // install-*
	Label   string // install-launchd
	Program string // install-*
	LogDir  string // install-*
}

// usageError is bad usage: exit 2 with the message.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// flagDoc is one documented flag.
type flagDoc struct{ name, env, def, usage string }

// flags builds a FlagSet whose defaults come from the environment, so an
// explicit flag wins over its variable.
type flags struct {
	fs      *flag.FlagSet
	docs    []flagDoc
	envErrs []error
	getenv  func(string) string
}

func newFlags(name string, getenv func(string) string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flags{fs: fs, getenv: getenv}
}

func (f *flags) str(p *string, name, env, def, usage string) {
	if v := f.env(env); v != "" {
		def = v
	}
	f.fs.StringVar(p, name, def, usage)
	shown := def
	if strings.Contains(name, "api-key") && !strings.HasSuffix(name, "-file") {
		shown = "" // never echo a key from the environment
	}
	f.docs = append(f.docs, flagDoc{name, env, shown, usage})
}

func (f *flags) boolean(p *bool, name, env string, def bool, usage string) {
	if v := f.env(env); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.envErrs = append(f.envErrs, usagef("%s=%q is not a boolean (use 1/0, true/false)", env, v))
		} else {
			def = b
		}
	}
	f.fs.BoolVar(p, name, def, usage)
	f.docs = append(f.docs, flagDoc{name, env, strconv.FormatBool(def), usage})
}

func (f *flags) duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v := f.env(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.envErrs = append(f.envErrs, usagef("%s=%q is not a duration (e.g. 5m)", env, v))
		} else {
			def = d
		}
	}
	f.fs.DurationVar(p, name, def, usage)
	f.docs = append(f.docs, flagDoc{name, env, def.String(), usage})
}

func (f *flags) env(name string) string {
	if name == "" {
		return ""
	}
	return strings.TrimSpace(f.getenv(name))
}

// paths are the per-OS default locations.
type paths struct {
	home, configDir, dataDir string
	goos                     string
}

// defaultPaths follows each OS's convention: on macOS everything under
// ~/Library/Application Support, elsewhere XDG config and data homes.
func defaultPaths(goos string, getenv func(string) string) paths {
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	p := paths{home: home, goos: goos}
	switch goos {
	case "darwin":
		p.configDir = filepath.Join(home, "Library", "Application Support", appDir)
		p.dataDir = p.configDir
	case "windows":
		p.configDir = filepath.Join(getenv("AppData"), appDir)
		p.dataDir = filepath.Join(getenv("LocalAppData"), appDir)
	default:
		cfg := getenv("XDG_CONFIG_HOME")
		if cfg == "" || !filepath.IsAbs(cfg) {
			cfg = filepath.Join(home, ".config")
		}
		data := getenv("XDG_DATA_HOME")
		if data == "" || !filepath.IsAbs(data) {
			data = filepath.Join(home, ".local", "share")
		}
		p.configDir = filepath.Join(cfg, appDir)
		p.dataDir = filepath.Join(data, appDir)
	}
	return p
}

// common registers the flags every scraping command reads.
func (f *flags) common(c *config, p paths) {
	f.str(&c.Server, "server", "USAGE_SERVER_URL", DefaultServer, "usage-server base URL")
	f.str(&c.APIKey, "api-key", "USAGE_API_KEY", "", "write key sent as X-API-Key (prefer --api-key-file)")
	f.str(&c.APIKeyFile, "api-key-file", "USAGE_API_KEY_FILE", "", "file holding the write key")
	f.str(&c.UsageURL, "usage-url", "USAGE_PAGE_URL", DefaultUsageURL, "the Claude usage page to scrape")
	f.str(&c.ProfileDir, "profile-dir", "USAGE_PROFILE_DIR", filepath.Join(p.configDir, "chromium-profile"), "Chromium profile that holds the claude.ai login")
	f.str(&c.OutboxDir, "outbox-dir", "USAGE_OUTBOX_DIR", filepath.Join(p.dataDir, "outbox"), "durable queue of unsent snapshots (and the status file)")
	f.str(&c.Account, "account", "USAGE_ACCOUNT", shared.DefaultAccount, "account name written into every snapshot")
	f.str(&c.ChromePath, "chrome-path", "USAGE_CHROME_PATH", "", "Chrome/Chromium binary (empty: search the usual places)")
	f.boolean(&c.Headless, "headless", "USAGE_HEADLESS", true, "run Chromium without a window")
	f.duration(&c.Interval, "interval", "USAGE_INTERVAL", DefaultInterval, "time between scrapes (±10% jitter)")
	f.duration(&c.PageTimeout, "page-timeout", "USAGE_PAGE_TIMEOUT", DefaultPageTimeout, "how long one page load may take")
	f.str(&c.LogLevel, "log-level", "USAGE_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	f.boolean(&c.Verbose, "verbose", "SYNC_VERBOSE", false, "log sync request/response detail (never the key)")
}

// parse parses args and checks what every command shares.
func (f *flags) parse(args []string, stdout io.Writer, header string) error {
	f.fs.Usage = func() { writeFlagDocs(stdout, header, f.docs) }
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return usagef("%v (see --help)", err)
	}
	if f.fs.NArg() > 0 {
		return usagef("unexpected argument %q (see --help)", f.fs.Arg(0))
	}
	return errors.Join(f.envErrs...)
}

func writeFlagDocs(w io.Writer, header string, docs []flagDoc) {
	fmt.Fprintln(w, header)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tENV\tDEFAULT\tDESCRIPTION")
	for _, d := range docs {
		def := d.def
		if def == "" {
			def = `""`
		}
		env := d.env
		if env == "" {
			env = "-"
		}
		fmt.Fprintf(tw, "  --%s\t%s\t%s\t%s\n", d.name, env, def, d.usage)
	}
	tw.Flush()
}

// check validates the shared values.
func (c *config) check() error {
	u, err := url.Parse(c.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("--server %q must be an http(s) URL such as %s", c.Server, DefaultServer)
	}
	if u, err := url.Parse(c.UsageURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("--usage-url %q must be an http(s) URL", c.UsageURL)
	}
	if !shared.AccountPattern.MatchString(c.Account) {
		return usagef("--account %q must match %s", c.Account, shared.AccountPattern)
	}
	if c.Interval < minInterval {
		return usagef("--interval %s is too short: at least %s (claude.ai must not be hammered)", c.Interval, minInterval)
	}
	if c.PageTimeout <= 0 {
		return usagef("--page-timeout must be positive")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.ProfileDir == "" || c.OutboxDir == "" {
		return usagef("--profile-dir and --outbox-dir must not be empty")
	}
	return nil
}

// key resolves the write key from --api-key or --api-key-file.
func (c *config) key() (string, error) {
	if c.APIKeyFile != "" {
		raw, err := os.ReadFile(c.APIKeyFile)
		if err != nil {
			return "", usagef("reading --api-key-file: %v", err)
		}
		k := strings.TrimSpace(string(raw))
		if k == "" {
			return "", usagef("--api-key-file %s is empty", c.APIKeyFile)
		}
		return k, nil
	}
	if c.APIKey == "" {
		return "", usagef("no write key: set --api-key-file (or --api-key / USAGE_API_KEY)")
	}
	return c.APIKey, nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, usagef("--log-level %q must be debug, info, warn or error", s)
}

// stateFile is where the sync statistics live, next to the queue.
func stateFile(outboxDir string) string {
	return filepath.Join(outboxDir, "state", "sync-state.json")
}
