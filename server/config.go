package server

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/claude-usage/widget/internal/config"
)

// Options is everything the command line and environment configure. Run
// turns it into a Config for New and store.Options for the store.
type Options struct {
	Addr              string
	DataDir           string
	APIKey            string
	ReadToken         string
	PublicRead        bool
	RetentionVersions int
	RetentionDays     int
	RateLimit         int
	MaxAccounts       int
	HistoryDays       int
	MaxStreams        int
	LogLevel          string
	LogFormat         string
	Verbose           bool
	MetricsToken      string
	TrustedProxies    string
	WebDir            string
	WidgetRefresh     time.Duration
	WidgetRetryDelay  time.Duration
	WidgetThreshold   int
	WidgetCooldown    time.Duration
	ShutdownTimeout   time.Duration

	// Warnings are what parsing found worth telling the operator without
	// refusing to start (a key file others can read); Run logs them.
	Warnings []string
}

// MinKeyLength is the shortest write key or read token the server accepts:
// a short key is guessed long before the failed-auth limit matters.
const MinKeyLength = 16

// ErrHelp is returned by ParseOptions when --help was asked for; the usage
// text has been written and the command should exit 0.
var ErrHelp = config.ErrHelp

const (
	helpHeader = "usage-server: the Claude usage widget's backend (API, health, metrics, widget).\n\n" +
		"Usage: usage-server [flags]\n\nEvery flag can also be set by its environment variable; a flag wins."
	helpFooter = "The server refuses to start without a write key, and without a read token unless --public-read;\n" +
		"both must be at least 16 characters and differ from each other. Without a metrics token /metrics is open."
)

// ParseOptions parses args with the environment from getenv (os.Getenv in
// production). Keys given through files are read here so that a missing
// file fails at start with a clear message.
func ParseOptions(args []string, getenv func(string) string, stdout io.Writer) (Options, error) {
	var o Options
	s := config.New("usage-server", getenv)
	s.String(&o.Addr, "addr", "USAGE_ADDR", ":8080", "listen address (host:port; port 0 picks a free port)")
	s.String(&o.DataDir, "data-dir", "USAGE_DATA_DIR", "./data", "directory of the file store")
	s.Secret(&o.APIKey, "api-key", "USAGE_API_KEY", "write key for POSTs (X-API-Key)")
	s.Secret(&o.ReadToken, "read-token", "USAGE_READ_TOKEN", "read token for GETs (Authorization: Bearer)")
	s.Bool(&o.PublicRead, "public-read", "USAGE_PUBLIC_READ", false, "serve GETs without a read token")
	s.Int(&o.RetentionVersions, "retention-versions", "USAGE_RETENTION_VERSIONS", 100, "keep at least the last N versions per account")
	s.Int(&o.RetentionDays, "retention-days", "USAGE_RETENTION_DAYS", 7, "keep at least the versions of the last D days")
	s.Int(&o.RateLimit, "rate-limit", "USAGE_RATE_LIMIT", 30, "POSTs per minute per key and client IP (0 disables)")
	s.Int(&o.MaxAccounts, "max-accounts", "USAGE_MAX_ACCOUNTS", 20, "most accounts the store keeps; a POST for a new one beyond it is 403 ACCOUNT_LIMIT")
	s.Int(&o.HistoryDays, "history-days", "USAGE_HISTORY_DAYS", 400, "days of hourly history and past windows kept beyond the versions")
	s.Int(&o.MaxStreams, "max-streams", "USAGE_MAX_STREAMS", 100, "most open live-update streams; one more is 503 STREAM_LIMIT")
	s.String(&o.LogLevel, "log-level", "USAGE_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	s.String(&o.LogFormat, "log-format", "USAGE_LOG_FORMAT", config.FormatAuto, "log format: auto (text on a terminal, JSON otherwise), json, text")
	s.Bool(&o.Verbose, "verbose", "SYNC_VERBOSE", false, "log request/response detail (never keys) and stack traces")
	s.Secret(&o.MetricsToken, "metrics-token", "USAGE_METRICS_TOKEN", "metrics token for /metrics (Authorization: Bearer)")
	s.String(&o.TrustedProxies, "trusted-proxies", "USAGE_TRUSTED_PROXIES", "", "comma-separated reverse-proxy IPs/CIDRs whose X-Forwarded-For is trusted for the client IP")
	s.String(&o.WebDir, "web-dir", "USAGE_WEB_DIR", "./web", "directory with app.wasm, icons and CSS for the widget")
	s.Duration(&o.WidgetRefresh, "widget-refresh", "USAGE_WIDGET_REFRESH", 60*time.Second, "widget auto-refresh interval")
	s.Duration(&o.WidgetRetryDelay, "widget-retry-delay", "USAGE_WIDGET_RETRY_DELAY", 2*time.Second, "widget delay between fetch retries")
	s.Int(&o.WidgetThreshold, "widget-breaker-threshold", "USAGE_WIDGET_BREAKER_THRESHOLD", 3, "widget breaker: consecutive failures that open it")
	s.Duration(&o.WidgetCooldown, "widget-breaker-cooldown", "USAGE_WIDGET_BREAKER_COOLDOWN", 60*time.Second, "widget breaker: how long it stays open")
	s.Duration(&o.ShutdownTimeout, "shutdown-timeout", "USAGE_SHUTDOWN_TIMEOUT", 15*time.Second, "how long shutdown waits for in-flight requests")

	if err := s.Parse(args, stdout, helpHeader, helpFooter); err != nil {
		if errors.Is(err, config.ErrHelp) {
			return o, ErrHelp
		}
		return o, fmt.Errorf("server: %w", err)
	}
	o.Warnings = s.Warnings
	if err := o.check(); err != nil {
		return o, err
	}
	return o, nil
}

// check refuses combinations the server cannot run with.
func (o *Options) check() error {
	if o.APIKey == "" {
		return errors.New("server: no write key: set --api-key or --api-key-file (env USAGE_API_KEY); the server refuses to accept unauthenticated writes")
	}
	if o.ReadToken == "" && !o.PublicRead {
		return errors.New("server: no read token: set --read-token or --read-token-file (env USAGE_READ_TOKEN), or pass --public-read to serve usage data without one")
	}
	if err := checkKeys(o.APIKey, o.ReadToken); err != nil {
		return err
	}
	switch {
	case o.RetentionVersions < 1:
		return fmt.Errorf("server: --retention-versions must be at least 1, got %d", o.RetentionVersions)
	case o.RetentionDays < 0:
		return fmt.Errorf("server: --retention-days must not be negative, got %d", o.RetentionDays)
	case o.RateLimit < 0:
		return fmt.Errorf("server: --rate-limit must not be negative, got %d", o.RateLimit)
	case o.MaxAccounts < 1:
		return fmt.Errorf("server: --max-accounts must be at least 1, got %d", o.MaxAccounts)
	case o.HistoryDays < 1:
		return fmt.Errorf("server: --history-days must be at least 1, got %d", o.HistoryDays)
	case o.MaxStreams < 1:
		return fmt.Errorf("server: --max-streams must be at least 1, got %d", o.MaxStreams)
	case o.WidgetThreshold < 1:
		return fmt.Errorf("server: --widget-breaker-threshold must be at least 1, got %d", o.WidgetThreshold)
	case o.WidgetRefresh <= 0 || o.WidgetRetryDelay <= 0 || o.WidgetCooldown <= 0:
		return errors.New("server: --widget-refresh, --widget-retry-delay and --widget-breaker-cooldown must be positive")
	case o.DataDir == "":
		return errors.New("server: --data-dir must not be empty")
	}
	if _, err := config.ParseLevel(o.LogLevel); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	f, err := config.ParseFormat(o.LogFormat)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	o.LogFormat = f
	return nil
}

// checkKeys refuses keys a guesser or a mix-up would defeat: too short, or
// the read token equal to the write key (whoever reads could then write).
// The read token may be empty only with --public-read, checked by the caller.
func checkKeys(apiKey, readToken string) error {
	if n := len(apiKey); n < MinKeyLength {
		return fmt.Errorf("server: the write key is %d characters; use at least %d (e.g. head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n')", n, MinKeyLength)
	}
	if readToken == "" {
		return nil
	}
	if n := len(readToken); n < MinKeyLength {
		return fmt.Errorf("server: the read token is %d characters; use at least %d", n, MinKeyLength)
	}
	if constantEqual(apiKey, readToken) {
		return errors.New("server: the read token equals the write key; give them different values, or every reader can write")
	}
	return nil
}
