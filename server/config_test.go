package server

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestParseOptionsDefaults(t *testing.T) {
	t.Parallel()
	o, err := ParseOptions([]string{"--api-key", "k", "--read-token", "r"}, envOf(), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{
		Addr: ":8080", DataDir: "./data", APIKey: "k", ReadToken: "r", RetentionVersions: 100, RetentionDays: 7,
		RateLimit: 30, LogLevel: "info", WebDir: "./web", WidgetRefresh: 60 * time.Second,
		WidgetRetryDelay: 2 * time.Second, WidgetThreshold: 3, WidgetCooldown: 60 * time.Second,
		ShutdownTimeout: 15 * time.Second,
	}
	if o != want {
		t.Errorf("defaults:\n got %+v\nwant %+v", o, want)
	}
}

func TestParseOptionsEnvAndFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("  from-file-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envOf("USAGE_ADDR", "127.0.0.1:9", "USAGE_API_KEY_FILE", keyFile, "USAGE_PUBLIC_READ", "1",
		"USAGE_RATE_LIMIT", "5", "SYNC_VERBOSE", "1", "USAGE_WIDGET_REFRESH", "30s", "USAGE_DATA_DIR", "/env/dir")
	o, err := ParseOptions([]string{"--data-dir", "/flag/dir", "--retention-days=3"}, env, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != "127.0.0.1:9" || o.APIKey != "from-file-key" || !o.PublicRead || o.RateLimit != 5 || !o.Verbose ||
		o.WidgetRefresh != 30*time.Second || o.DataDir != "/flag/dir" || o.RetentionDays != 3 {
		t.Errorf("options = %+v", o)
	}
}

func TestParseOptionsErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"no write key", []string{"--read-token", "r"}, nil, "no write key"},
		{"no read token", []string{"--api-key", "k"}, nil, "--public-read"},
		{"key and key file", []string{"--api-key", "k", "--api-key-file", empty, "--public-read"}, nil, "use one"},
		{"missing key file", []string{"--api-key-file", filepath.Join(dir, "nope"), "--public-read"}, nil, "reading the write key"},
		{"empty key file", []string{"--api-key-file", empty, "--public-read"}, nil, "is empty"},
		{"bad env int", []string{"--api-key", "k", "--public-read"}, []string{"USAGE_RATE_LIMIT", "lots"}, "USAGE_RATE_LIMIT"},
		{"bad env bool", []string{"--api-key", "k"}, []string{"USAGE_PUBLIC_READ", "maybe"}, "USAGE_PUBLIC_READ"},
		{"bad log level", []string{"--api-key", "k", "--public-read", "--log-level", "loud"}, nil, "--log-level"},
		{"negative rate", []string{"--api-key", "k", "--public-read", "--rate-limit", "-1"}, nil, "--rate-limit"},
		{"unknown flag", []string{"--nope"}, nil, "see --help"},
		{"stray argument", []string{"--api-key", "k", "--public-read", "serve"}, nil, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseOptions(tt.args, envOf(tt.env...), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// allFlags is every flag with its env variable; --help must document each.
var allFlags = map[string]string{
	"addr": "USAGE_ADDR", "data-dir": "USAGE_DATA_DIR", "api-key": "USAGE_API_KEY", "api-key-file": "USAGE_API_KEY_FILE",
	"read-token": "USAGE_READ_TOKEN", "read-token-file": "USAGE_READ_TOKEN_FILE", "public-read": "USAGE_PUBLIC_READ",
	"retention-versions": "USAGE_RETENTION_VERSIONS", "retention-days": "USAGE_RETENTION_DAYS", "rate-limit": "USAGE_RATE_LIMIT",
	"log-level": "USAGE_LOG_LEVEL", "verbose": "SYNC_VERBOSE", "metrics-token": "USAGE_METRICS_TOKEN",
	"metrics-token-file": "USAGE_METRICS_TOKEN_FILE", "trusted-proxies": "USAGE_TRUSTED_PROXIES", "web-dir": "USAGE_WEB_DIR",
	"widget-refresh": "USAGE_WIDGET_REFRESH", "widget-retry-delay": "USAGE_WIDGET_RETRY_DELAY",
	"widget-breaker-threshold": "USAGE_WIDGET_BREAKER_THRESHOLD", "widget-breaker-cooldown": "USAGE_WIDGET_BREAKER_COOLDOWN",
	"shutdown-timeout": "USAGE_SHUTDOWN_TIMEOUT",
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, err := ParseOptions([]string{"--help"}, envOf("USAGE_API_KEY", "secret-from-env"), &out)
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v, want ErrHelp", err)
	}
	checkHelp(t, out.String())
	if strings.Contains(out.String(), "secret-from-env") {
		t.Error("--help echoes a key from the environment")
	}
}

func checkHelp(t *testing.T, help string) {
	t.Helper()
	if got := strings.Count(help, "Usage:"); got != 1 {
		t.Errorf("usage printed %d times", got)
	}
	lines := strings.Split(help, "\n")
	for name, env := range allFlags {
		found := false
		for _, l := range lines {
			if strings.HasPrefix(l, "--"+name+" ") && strings.Contains(l, " "+env+" ") {
				found = true
			}
		}
		if !found {
			t.Errorf("--help has no line for --%s with %s:\n%s", name, env, help)
		}
	}
	for _, def := range []string{":8080", "./data", "100", "30", "1m0s", "2s", "./web"} {
		if !strings.Contains(help, def) {
			t.Errorf("--help does not show the default %q", def)
		}
	}
}
