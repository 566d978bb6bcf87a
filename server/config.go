package server

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Options is everything the command line and environment configure. Run
// turns it into a Config for New and store.Options for the store.
type Options struct {
	Addr              string
	DataDir           string
	APIKey            string
	APIKeyFile        string
	ReadToken         string
	ReadTokenFile     string
	PublicRead        bool
	RetentionVersions int
	RetentionDays     int
	RateLimit         int
	LogLevel          string
	Verbose           bool
	MetricsToken      string
	MetricsTokenFile  string
	TrustedProxies    string
	WebDir            string
	WidgetRefresh     time.Duration
	WidgetRetryDelay  time.Duration
	WidgetThreshold   int
	WidgetCooldown    time.Duration
	ShutdownTimeout   time.Duration
}

// flagDoc is one documented flag: its env variable is read as the default
// so that an explicit flag always wins over the environment.
type flagDoc struct {
	name, env, def, usage string
}

// ErrHelp is returned by ParseOptions when --help was asked for; the usage
// text has been written and the command should exit 0.
var ErrHelp = flag.ErrHelp

// ParseOptions parses args with the environment from getenv (os.Getenv in
// production). Keys given through files are read here so that a missing
// file fails at start with a clear message.
func ParseOptions(args []string, getenv func(string) string, stdout io.Writer) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("usage-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var docs []flagDoc
	var envErrs []error

	str := func(p *string, name, env, def, usage string) {
		if v := getenv(env); env != "" && v != "" {
			def = v
		}
		fs.StringVar(p, name, def, usage)
		shown := def
		if strings.Contains(name, "key") || strings.Contains(name, "token") {
			shown = "" // never echo a secret from the environment
		}
		docs = append(docs, flagDoc{name, env, shown, usage})
	}
	integer := func(p *int, name, env string, def int, usage string) {
		if v := getenv(env); env != "" && v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("server: %s=%q is not an integer", env, v))
			} else {
				def = n
			}
		}
		fs.IntVar(p, name, def, usage)
		docs = append(docs, flagDoc{name, env, strconv.Itoa(def), usage})
	}
	dur := func(p *time.Duration, name, env string, def time.Duration, usage string) {
		if v := getenv(env); env != "" && v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("server: %s=%q is not a duration (e.g. 60s)", env, v))
			} else {
				def = d
			}
		}
		fs.DurationVar(p, name, def, usage)
		docs = append(docs, flagDoc{name, env, def.String(), usage})
	}
	boolean := func(p *bool, name, env string, usage string) {
		def := false
		if v := getenv(env); env != "" && v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("server: %s=%q is not a boolean (use 1/0, true/false)", env, v))
			} else {
				def = b
			}
		}
		fs.BoolVar(p, name, def, usage)
		docs = append(docs, flagDoc{name, env, strconv.FormatBool(def), usage})
	}

	str(&o.Addr, "addr", "USAGE_ADDR", ":8080", "listen address (host:port; port 0 picks a free port)")
	str(&o.DataDir, "data-dir", "USAGE_DATA_DIR", "./data", "directory of the file store")
	str(&o.APIKey, "api-key", "USAGE_API_KEY", "", "write key for POSTs (X-API-Key); required unless --api-key-file")
	str(&o.APIKeyFile, "api-key-file", "USAGE_API_KEY_FILE", "", "file holding the write key")
	str(&o.ReadToken, "read-token", "USAGE_READ_TOKEN", "", "read token for GETs (Authorization: Bearer); required unless --public-read")
	str(&o.ReadTokenFile, "read-token-file", "USAGE_READ_TOKEN_FILE", "", "file holding the read token")
	boolean(&o.PublicRead, "public-read", "USAGE_PUBLIC_READ", "serve GETs without a read token")
	integer(&o.RetentionVersions, "retention-versions", "USAGE_RETENTION_VERSIONS", 100, "keep at least the last N versions per account")
	integer(&o.RetentionDays, "retention-days", "USAGE_RETENTION_DAYS", 7, "keep at least the versions of the last D days")
	integer(&o.RateLimit, "rate-limit", "USAGE_RATE_LIMIT", 30, "POSTs per minute per key and client IP (0 disables)")
	str(&o.LogLevel, "log-level", "USAGE_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	boolean(&o.Verbose, "verbose", "SYNC_VERBOSE", "log request/response detail (never keys) and stack traces")
	str(&o.MetricsToken, "metrics-token", "USAGE_METRICS_TOKEN", "", "bearer token for /metrics (empty: open)")
	str(&o.MetricsTokenFile, "metrics-token-file", "USAGE_METRICS_TOKEN_FILE", "", "file holding the metrics token")
	str(&o.TrustedProxies, "trusted-proxies", "USAGE_TRUSTED_PROXIES", "", "comma-separated reverse-proxy IPs/CIDRs whose X-Forwarded-For is trusted for the client IP")
	str(&o.WebDir, "web-dir", "USAGE_WEB_DIR", "./web", "directory with app.wasm, icons and CSS for the widget")
	dur(&o.WidgetRefresh, "widget-refresh", "USAGE_WIDGET_REFRESH", 60*time.Second, "widget auto-refresh interval")
	dur(&o.WidgetRetryDelay, "widget-retry-delay", "USAGE_WIDGET_RETRY_DELAY", 2*time.Second, "widget delay between fetch retries")
	integer(&o.WidgetThreshold, "widget-breaker-threshold", "USAGE_WIDGET_BREAKER_THRESHOLD", 3, "widget breaker: consecutive failures that open it")
	dur(&o.WidgetCooldown, "widget-breaker-cooldown", "USAGE_WIDGET_BREAKER_COOLDOWN", 60*time.Second, "widget breaker: how long it stays open")
	dur(&o.ShutdownTimeout, "shutdown-timeout", "USAGE_SHUTDOWN_TIMEOUT", 15*time.Second, "how long shutdown waits for in-flight requests")

	fs.Usage = func() { writeUsage(stdout, docs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, ErrHelp // the flag package has printed the usage
		}
		return o, fmt.Errorf("server: %w (see --help)", err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("server: unexpected argument %q (see --help)", fs.Arg(0))
	}
	if len(envErrs) > 0 {
		return o, errors.Join(envErrs...)
	}
	if err := o.resolve(); err != nil {
		return o, err
	}
	return o, nil
}

func writeUsage(w io.Writer, docs []flagDoc) {
	fmt.Fprintln(w, "usage-server: the Claude usage widget's backend (API, health, metrics, widget).")
	fmt.Fprintln(w, "\nUsage: usage-server [flags]\n\nEvery flag can also be set by its environment variable; a flag wins.")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tENV\tDEFAULT\tDESCRIPTION")
	for _, d := range docs {
		def := d.def
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(tw, "--%s\t%s\t%s\t%s\n", d.name, d.env, def, d.usage)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nThe server refuses to start without a write key, and without a read token unless --public-read.")
}

// resolve reads key files and checks combinations.
func (o *Options) resolve() error {
	var err error
	if o.APIKey, err = secret("write key", "--api-key", o.APIKey, "--api-key-file", o.APIKeyFile); err != nil {
		return err
	}
	if o.APIKey == "" {
		return errors.New("server: no write key: set --api-key or --api-key-file (env USAGE_API_KEY); the server refuses to accept unauthenticated writes")
	}
	if o.ReadToken, err = secret("read token", "--read-token", o.ReadToken, "--read-token-file", o.ReadTokenFile); err != nil {
		return err
	}
	if o.ReadToken == "" && !o.PublicRead {
		return errors.New("server: no read token: set --read-token or --read-token-file (env USAGE_READ_TOKEN), or pass --public-read to serve usage data without one")
	}
	if o.MetricsToken, err = secret("metrics token", "--metrics-token", o.MetricsToken, "--metrics-token-file", o.MetricsTokenFile); err != nil {
		return err
	}
	switch {
	case o.RetentionVersions < 1:
		return fmt.Errorf("server: --retention-versions must be at least 1, got %d", o.RetentionVersions)
	case o.RetentionDays < 0:
		return fmt.Errorf("server: --retention-days must not be negative, got %d", o.RetentionDays)
	case o.RateLimit < 0:
		return fmt.Errorf("server: --rate-limit must not be negative, got %d", o.RateLimit)
	case o.WidgetThreshold < 1:
		return fmt.Errorf("server: --widget-breaker-threshold must be at least 1, got %d", o.WidgetThreshold)
	case o.WidgetRefresh <= 0 || o.WidgetRetryDelay <= 0 || o.WidgetCooldown <= 0:
		return errors.New("server: --widget-refresh, --widget-retry-delay and --widget-breaker-cooldown must be positive")
	case o.DataDir == "":
		return errors.New("server: --data-dir must not be empty")
	}
	if _, err := parseLevel(o.LogLevel); err != nil {
		return err
	}
	return nil
}

// secret returns the value given directly or read from a file; both at
// once is ambiguous and refused.
func secret(what, flagName, value, fileFlag, file string) (string, error) {
	if file == "" {
		return strings.TrimSpace(value), nil
	}
	if value != "" {
		return "", fmt.Errorf("server: both %s and %s are set; use one for the %s", flagName, fileFlag, what)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("server: reading the %s from %s: %w", what, fileFlag, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("server: %s file %s is empty", what, file)
	}
	return v, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("server: --log-level %q is not one of debug, info, warn, error", s)
	}
	return l, nil
}
