package server

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

const (
	rotatedKey     = "write-key-rotated-0123456789"
	rotatedToken   = "read-token-rotated-0123456789"
	startMetrics   = "metrics-token-0123456789"
	rotatedMetrics = "metrics-token-rotated-0123456789"
)

// keysWork reports, for each key, whether the server accepts it: the write
// key on a POST, the read token on a GET, the metrics token on /metrics.
func keysWork(t *testing.T, do func(method, target, body string, hdr ...string) resp, write, read, metrics string, at time.Time) (bool, bool, bool) {
	t.Helper()
	p := do(http.MethodPost, shared.PathUsage, snap("default", at, 10),
		"Content-Type", "application/json", shared.HeaderAPIKey, write)
	g := do(http.MethodGet, shared.PathUsage, "", "Authorization", "Bearer "+read)
	m := do(http.MethodGet, shared.PathMetrics, "", "Authorization", "Bearer "+metrics)
	return p.status == http.StatusCreated, g.status == http.StatusOK, m.status == http.StatusOK
}

// A reload swaps the keys only when the new ones pass the checks of the
// start; otherwise the keys in force stay and the failure is logged.
func TestReloadKeys(t *testing.T) {
	t.Parallel()
	loaded := func(write, read, metrics string) func() (Options, error) {
		return func() (Options, error) { return Options{APIKey: write, ReadToken: read, MetricsToken: metrics}, nil }
	}
	tests := []struct {
		name        string
		load        func() (Options, error)
		wantErr     string
		wantChanged string // the "changed" field of the success line
	}{
		{"all three rotated", loaded(rotatedKey, rotatedToken, rotatedMetrics), "", "write key, read token, metrics token"},
		{"only the read token", loaded(testKey, rotatedToken, startMetrics), "", "read token"},
		{"nothing changed", loaded(testKey, testToken, startMetrics), "", "none"},
		{"short write key", loaded("short-key", rotatedToken, rotatedMetrics), "at least 16", ""},
		{"short read token", loaded(rotatedKey, "short", rotatedMetrics), "at least 16", ""},
		{"read token equals write key", loaded(rotatedKey, rotatedKey, rotatedMetrics), "equals the write key", ""},
		{"no read token", loaded(rotatedKey, "", rotatedMetrics), "no read token", ""},
		{"no write key", loaded("", rotatedToken, rotatedMetrics), "no write key", ""},
		{"a file cannot be read", func() (Options, error) {
			return Options{}, errors.New("server: --api-key-file /etc/usage/api-key is empty")
		}, "is empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withConfig(func(c *Config) { c.MetricsToken = startMetrics }))
			err := e.srv.reloadKeys(tt.load, e.log)
			want, _ := tt.load()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("reload error = %v, want one containing %q", err, tt.wantErr)
				}
				if !e.logs.Contains("reloading the key files failed; the previous keys stay in use") {
					t.Errorf("the failed reload is not logged:\n%s", e.logs)
				}
				want = Options{APIKey: testKey, ReadToken: testToken, MetricsToken: startMetrics}
			} else {
				if err != nil {
					t.Fatalf("reload: %v", err)
				}
				var saw bool
				for _, l := range logLines(t, e.logs.String()) {
					if l["msg"] == "key files reloaded" {
						saw = true
						if got := l["changed"]; got != tt.wantChanged {
							t.Errorf("changed = %v, want %q", got, tt.wantChanged)
						}
					}
				}
				if !saw {
					t.Errorf("no \"key files reloaded\" line:\n%s", e.logs)
				}
			}
			w, r, m := keysWork(t, e.do, want.APIKey, want.ReadToken, want.MetricsToken, t0)
			if !w || !r || !m {
				t.Errorf("keys in force: write %v, read %v, metrics %v; want all accepted", w, r, m)
			}
			if tt.wantErr == "" && want.APIKey != testKey {
				if w, r, m := keysWork(t, e.do, testKey, testToken, startMetrics, t0.Add(time.Second)); w || r || m {
					t.Errorf("old keys still accepted after the reload: write %v, read %v, metrics %v", w, r, m)
				}
			}
			for _, k := range []string{testKey, testToken, startMetrics, rotatedKey, rotatedToken, rotatedMetrics} {
				if e.logs.Contains(k) {
					t.Errorf("the log holds a key:\n%s", e.logs)
				}
			}
		})
	}
}

// reloadKeysOn reloads once per signal and its goroutine ends with stop
// (TestMain's goleak check fails otherwise).
func TestReloadKeysOnSignalChannel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sig := make(chan os.Signal)
	calls := make(chan struct{}, 2)
	stop := e.srv.reloadKeysOn(t.Context(), sig, func() (Options, error) {
		calls <- struct{}{}
		return Options{APIKey: rotatedKey, ReadToken: rotatedToken}, nil
	}, e.log)
	sig <- syscall.SIGHUP // unbuffered: returns once the watcher took it
	<-calls
	stop()
	if got, want := e.srv.keys().write, rotatedKey; got != want {
		t.Errorf("write key after the signal is not the reloaded one")
	}
	select {
	case sig <- syscall.SIGHUP:
		t.Error("the watcher still takes signals after stop")
	default:
	}
}

// The real binary: rewrite the key files, SIGHUP, and the old keys are
// refused while the new ones work, without a restart; a bad file on the
// next SIGHUP keeps the new keys.
func TestProcessReloadsKeyFilesOnSIGHUP(t *testing.T) {
	t.Parallel()
	keys := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(keys, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	apiFile, readFile, metricsFile := write("api-key", testKey), write("read-token", testToken), write("metrics-token", startMetrics)
	p := startServer(t, "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--web-dir", t.TempDir(),
		"--api-key-file", apiFile, "--read-token-file", readFile, "--metrics-token-file", metricsFile)
	base := "http://" + p.addr
	do := func(method, target, body string, hdr ...string) resp {
		return send(t, method, base+target, body, hdr...)
	}
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	if w, r, m := keysWork(t, do, testKey, testToken, startMetrics, at); !w || !r || !m {
		t.Fatalf("the keys of the start: write %v, read %v, metrics %v", w, r, m)
	}

	write("api-key", rotatedKey)
	write("read-token", rotatedToken)
	write("metrics-token", rotatedMetrics)
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitLine("key files reloaded", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if w, r, m := keysWork(t, do, testKey, testToken, startMetrics, at.Add(time.Second)); w || r || m {
		t.Errorf("old keys accepted after SIGHUP: write %v, read %v, metrics %v", w, r, m)
	}
	if w, r, m := keysWork(t, do, rotatedKey, rotatedToken, rotatedMetrics, at.Add(2*time.Second)); !w || !r || !m {
		t.Errorf("new keys after SIGHUP: write %v, read %v, metrics %v; want all accepted", w, r, m)
	}

	write("read-token", rotatedKey) // equal to the write key: refused
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitLine("reloading the key files failed", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if w, r, m := keysWork(t, do, rotatedKey, rotatedToken, rotatedMetrics, at.Add(3*time.Second)); !w || !r || !m {
		t.Errorf("after a refused reload: write %v, read %v, metrics %v; want the previous keys kept", w, r, m)
	}

	if err := p.stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.Log)
	}
	for _, k := range []string{testKey, testToken, startMetrics, rotatedKey, rotatedToken, rotatedMetrics} {
		if strings.Contains(p.Log.String(), k) {
			t.Errorf("the log holds a key:\n%s", p.Log)
		}
	}
}
