package cli

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/claude-usage/widget/internal/config"
	"github.com/claude-usage/widget/scraper/oauth"
	"github.com/claude-usage/widget/scraper/source"
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

// settings are every flag of every command; each command registers the
// ones it reads.
type settings struct {
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
	LogFormat   string
	Verbose     bool

	KeepBrowser bool   // run, once
	CrossCheck  bool   // run, once
	Source      string // run, once, doctor
	OAuthURL    string // run, once, doctor

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

// common registers the flags every command reads. The install commands
// take the key file as a path to write into the service file, never the
// key, so for them both key flags are plain strings (--api-key only to
// refuse it); the others resolve the key with Secret.
func common(f *config.Set, c *settings, p paths, installing bool) {
	f.String(&c.Server, "server", "USAGE_SERVER_URL", DefaultServer, "usage-server base URL")
	if installing {
		f.String(&c.APIKey, "api-key", "", "", "refused here: a key in a service file is readable by every process of the user")
		f.String(&c.APIKeyFile, "api-key-file", "USAGE_API_KEY_FILE", "", "file holding the write key, read by the service at start")
	} else {
		f.Secret(&c.APIKey, "api-key", "USAGE_API_KEY", "write key sent as X-API-Key (prefer the -file form)")
	}
	f.String(&c.UsageURL, "usage-url", "USAGE_PAGE_URL", DefaultUsageURL, "the Claude usage page to scrape")
	f.String(&c.ProfileDir, "profile-dir", "USAGE_PROFILE_DIR", filepath.Join(p.configDir, "chromium-profile"), "Chromium profile that holds the claude.ai login")
	f.String(&c.OutboxDir, "outbox-dir", "USAGE_OUTBOX_DIR", filepath.Join(p.dataDir, "outbox"), "durable queue of unsent snapshots (and the status file)")
	f.String(&c.Account, "account", "USAGE_ACCOUNT", shared.DefaultAccount, "account name written into every snapshot")
	f.String(&c.ChromePath, "chrome-path", "USAGE_CHROME_PATH", "", "Chrome/Chromium binary (empty: search the usual places)")
	f.Bool(&c.Headless, "headless", "USAGE_HEADLESS", true, "run Chromium without a window")
	f.Duration(&c.Interval, "interval", "USAGE_INTERVAL", DefaultInterval, "time between scrapes (±10% jitter)")
	f.Duration(&c.PageTimeout, "page-timeout", "USAGE_PAGE_TIMEOUT", DefaultPageTimeout, "how long one page load may take")
	f.String(&c.LogLevel, "log-level", "USAGE_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	f.String(&c.LogFormat, "log-format", "USAGE_LOG_FORMAT", config.FormatAuto, "log format: auto (text on a terminal, JSON otherwise), json, text")
	f.Bool(&c.Verbose, "verbose", "SYNC_VERBOSE", false, "log sync request/response detail (never the key)")
}

// sourceFlags registers the flags that choose where the usage is read.
func sourceFlags(f *config.Set, c *settings) {
	f.String(&c.Source, "source", "USAGE_SOURCE", source.Auto,
		"where to read the usage: auto (Claude Code's OAuth login when it exists, the browser as fallback), oauth, browser")
	f.String(&c.OAuthURL, "oauth-url", "USAGE_OAUTH_URL", oauth.DefaultBaseURL, "base URL of the OAuth usage endpoint (GET <base>/api/oauth/usage)")
	f.Bool(&c.CrossCheck, "cross-check", "USAGE_CROSS_CHECK", false,
		"with --source auto and both sources set up, also scrape with the browser after OAuth and report drift between them")
	f.Bool(&c.KeepBrowser, "keep-browser", "USAGE_KEEP_BROWSER", false,
		"keep Chromium running between scrapes (faster scrapes, hundreds of MB resident); default: started and closed for each scrape")
}

// check validates the shared values.
func (c *settings) check() error {
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
	if _, err := config.ParseLevel(c.LogLevel); err != nil {
		return usagef("%v", err)
	}
	if _, err := config.ParseFormat(c.LogFormat); err != nil {
		return usagef("%v", err)
	}
	if c.Source != "" && !slices.Contains(source.Modes, c.Source) {
		return usagef("--source %q must be one of %s", c.Source, strings.Join(source.Modes, ", "))
	}
	if c.OAuthURL != "" {
		if u, err := url.Parse(c.OAuthURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("--oauth-url %q must be an http(s) URL", c.OAuthURL)
		}
	}
	if c.ProfileDir == "" || c.OutboxDir == "" {
		return usagef("--profile-dir and --outbox-dir must not be empty")
	}
	return nil
}

// key is the write key the commands that sync send.
func (c *settings) key() (string, error) {
	if c.APIKey == "" {
		return "", usagef("no write key: set --api-key-file (or --api-key / USAGE_API_KEY)")
	}
	return c.APIKey, nil
}

// stateFile is where the sync statistics live, next to the queue.
func stateFile(outboxDir string) string {
	return filepath.Join(outboxDir, "state", "sync-state.json")
}
