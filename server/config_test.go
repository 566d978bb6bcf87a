package server

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
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
	o, err := ParseOptions([]string{"--api-key", testKey, "--read-token", testToken}, envOf(), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{
		Addr: ":8080", DataDir: "./data", APIKey: testKey, ReadToken: testToken, RetentionVersions: 100, RetentionDays: 7,
		RateLimit: 30, MaxAccounts: 20, HistoryDays: 400, MaxStreams: 100, LogLevel: "info", LogFormat: "auto", WebDir: "./web", WidgetRefresh: 60 * time.Second,
		WidgetRetryDelay: 2 * time.Second, WidgetThreshold: 3, WidgetCooldown: 60 * time.Second,
		ShutdownTimeout: 15 * time.Second,
	}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", o, want)
	}
}

func TestParseOptionsEnvAndFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("  from-file-key-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envOf("USAGE_ADDR", "127.0.0.1:9", "USAGE_API_KEY_FILE", keyFile, "USAGE_PUBLIC_READ", "1",
		"USAGE_RATE_LIMIT", "5", "SYNC_VERBOSE", "1", "USAGE_WIDGET_REFRESH", "30s", "USAGE_DATA_DIR", "/env/dir",
		"USAGE_LOG_FORMAT", "text", "USAGE_MAX_ACCOUNTS", "3")
	o, err := ParseOptions([]string{"--data-dir", "/flag/dir", "--retention-days=3"}, env, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != "127.0.0.1:9" || o.APIKey != "from-file-key-0123456789" || !o.PublicRead || o.RateLimit != 5 || !o.Verbose ||
		o.WidgetRefresh != 30*time.Second || o.DataDir != "/flag/dir" || o.RetentionDays != 3 ||
		o.LogFormat != "text" || o.MaxAccounts != 3 || len(o.Warnings) != 0 {
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
		{"no write key", []string{"--read-token", testToken}, nil, "no write key"},
		{"no read token", []string{"--api-key", testKey}, nil, "--public-read"},
		{"key and key file", []string{"--api-key", testKey, "--api-key-file", empty, "--public-read"}, nil, "use one"},
		{"missing key file", []string{"--api-key-file", filepath.Join(dir, "nope"), "--public-read"}, nil, "reading --api-key-file"},
		{"empty key file", []string{"--api-key-file", empty, "--public-read"}, nil, "is empty"},
		{"short write key", []string{"--api-key", "fifteen-chars-k", "--public-read"}, nil, "write key is 15 characters"},
		{"short read token", []string{"--api-key", testKey, "--read-token", "short"}, nil, "read token is 5 characters"},
		{"short key from env", []string{"--public-read"}, []string{"USAGE_API_KEY", "k"}, "at least 16"},
		{"read token equals write key", []string{"--api-key", testKey, "--read-token", testKey}, nil, "equals the write key"},
		{"read token equals write key via env", nil, []string{"USAGE_API_KEY", testKey, "USAGE_READ_TOKEN", testKey}, "equals the write key"},
		{"bad env int", []string{"--api-key", testKey, "--public-read"}, []string{"USAGE_RATE_LIMIT", "lots"}, "USAGE_RATE_LIMIT"},
		{"bad env bool", []string{"--api-key", testKey}, []string{"USAGE_PUBLIC_READ", "maybe"}, "USAGE_PUBLIC_READ"},
		{"bad log level", []string{"--api-key", testKey, "--public-read", "--log-level", "loud"}, nil, "--log-level"},
		{"bad log format", []string{"--api-key", testKey, "--public-read", "--log-format", "xml"}, nil, "--log-format"},
		{"negative rate", []string{"--api-key", testKey, "--public-read", "--rate-limit", "-1"}, nil, "--rate-limit"},
		{"no accounts", []string{"--api-key", testKey, "--public-read", "--max-accounts", "0"}, nil, "--max-accounts"},
		{"unknown flag", []string{"--nope"}, nil, "see --help"},
		{"stray argument", []string{"--api-key", testKey, "--public-read", "serve"}, nil, "unexpected argument"},
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

// A key file others can read is worth a warning, not a refusal; one only
// its owner reads is not.
func TestParseOptionsWarnsAboutReadableKeyFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mode os.FileMode
		want int
	}{
		{"owner only", 0o600, 0},
		{"group", 0o640, 1},
		{"world", 0o644, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := filepath.Join(t.TempDir(), "api-key")
			if err := os.WriteFile(f, []byte(testKey+"\n"), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f, tt.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			o, err := ParseOptions([]string{"--api-key-file", f, "--public-read"}, envOf(), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(o.Warnings), tt.want; got != want {
				t.Fatalf("warnings = %q, want %d", o.Warnings, want)
			}
			if tt.want > 0 && !strings.Contains(o.Warnings[0], "--api-key-file") {
				t.Errorf("warning %q does not name the flag", o.Warnings[0])
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
	"shutdown-timeout": "USAGE_SHUTDOWN_TIMEOUT", "log-format": "USAGE_LOG_FORMAT", "max-accounts": "USAGE_MAX_ACCOUNTS",
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

// The README's table is what operators read: every flag of --help is in it
// with the same variable and default, and it names no flag that --help
// does not have.
func TestREADMETableMatchesHelp(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join(testutil.MustRepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "### usage-server\n")
	if !ok {
		t.Fatal("README has no usage-server configuration section")
	}
	section, _, _ = strings.Cut(section, "\n### ")
	type row struct{ env, def string }
	documented := map[string]row{}
	for _, l := range strings.Split(section, "\n") {
		cells := strings.Split(l, "|")
		if len(cells) < 5 || !strings.Contains(cells[1], "`--") {
			continue
		}
		flags := strings.Split(cells[1], "/")
		envs := strings.Split(cells[2], "/")
		def := strings.Trim(strings.TrimSpace(cells[3]), "`")
		for i, f := range flags {
			env := ""
			if i < len(envs) {
				env = strings.Trim(strings.TrimSpace(envs[i]), "`")
			}
			if def == "—" || strings.HasSuffix(strings.TrimSpace(f), "-file`") {
				documented[strings.Trim(strings.TrimSpace(f), "`-")] = row{env, ""}
				continue
			}
			documented[strings.Trim(strings.TrimSpace(f), "`-")] = row{env, def}
		}
	}
	var help bytes.Buffer
	if _, err := ParseOptions([]string{"--help"}, envOf(), &help); !errors.Is(err, ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	inHelp := map[string]bool{}
	for _, l := range strings.Split(help.String(), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || !strings.HasPrefix(f[0], "--") {
			continue
		}
		name, env, def := strings.TrimPrefix(f[0], "--"), f[1], strings.Trim(f[2], `"`)
		inHelp[name] = true
		d, ok := documented[name]
		if !ok {
			t.Errorf("--%s is not in the README table", name)
			continue
		}
		if d.env != env {
			t.Errorf("--%s: README says %s, --help %s", name, d.env, env)
		}
		if !sameDefault(d.def, def) {
			t.Errorf("--%s: README default %q, --help %q", name, d.def, def)
		}
	}
	for name := range documented {
		if !inHelp[name] {
			t.Errorf("README documents --%s, which --help does not have", name)
		}
	}
}

func sameDefault(a, b string) bool {
	if a == b {
		return true
	}
	da, errA := time.ParseDuration(a)
	db, errB := time.ParseDuration(b)
	return errA == nil && errB == nil && da == db
}
