package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/claude-usage/widget/internal/testbin"
	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/shared"
)

// serverBin is the usage-server binary the process tests start: the
// Makefile's build in $USAGE_BIN_DIR, or one built here once.
var serverBin string

func TestMain(m *testing.M) {
	code := runTests(m)
	if code == 0 {
		// Every server, store, health checker and listener the tests start
		// must have stopped by now. fasthttp keeps a process-wide date
		// ticker, and its worker-pool cleaner notices a stopped server only
		// at its next 10 s tick; both are fasthttp's, not ours.
		if err := goleak.Find(
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
			goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
			// fiber's limiter starts one process-wide clock goroutine (sync.Once).
			// Its name depends on inlining, hence two spellings.
			goleak.IgnoreAnyFunction("github.com/gofiber/fiber/v2/utils.StartTimeStampUpdater.func1.1"),
			goleak.IgnoreAnyFunction("github.com/gofiber/fiber/v2/middleware/limiter.FixedWindow.New.StartTimeStampUpdater.func2.1"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "server tests: goroutines leaked:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func runTests(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "usage-server-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "server tests: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	defer stopServerPG()
	if serverBin, err = testbin.Locate(tmp, "usage-server"); err != nil {
		fmt.Fprintln(os.Stderr, "server tests:", err)
		return 1
	}
	return m.Run()
}

// proc is a started usage-server and the address it printed.
type proc struct {
	*testutil.Process
	addr string
}

// baseEnv keeps the child away from the developer's USAGE_* settings.
func baseEnv(extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if w := os.Getenv("USAGE_WEB_DIR"); w != "" {
		env = append(env, "USAGE_WEB_DIR="+w)
	}
	return append(env, extra...)
}

// startServer starts the binary and waits for the address it prints on
// stdout ("listening on ADDR").
func startServer(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{Process: testutil.StartProcess(t, serverBin, args, testutil.ProcessOptions{Env: baseEnv()})}
	if err := p.WaitLine("listening on ", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(p.Log.String(), "\n") {
		if a, ok := strings.CutPrefix(l, "listening on "); ok {
			p.addr = a
			return p
		}
	}
	t.Fatalf("usage-server logged but did not print its address:\n%s", p.Log)
	return nil
}

// stop sends SIGTERM and returns the exit error.
func (p *proc) stop() error {
	p.Stop()
	return p.ExitErr()
}

func TestProcessServesAndStopsCleanly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := []string{"--addr", "127.0.0.1:0", "--data-dir", dir, "--api-key", testKey, "--read-token", testToken, "--web-dir", t.TempDir()}
	p := startServer(t, args...)
	base := "http://" + p.addr
	scraped := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)

	r := send(t, http.MethodPost, base+shared.PathUsage, snap("default", scraped, 42),
		"Content-Type", "application/json", shared.HeaderAPIKey, testKey, shared.HeaderIdempotencyKey, "proc-1")
	if r.status != http.StatusCreated {
		t.Fatalf("POST = %d %s", r.status, r.body)
	}
	var pr shared.PostResult
	r.decode(t, &pr)
	r = send(t, http.MethodPost, base+shared.PathScraperStatus, fmt.Sprintf(`{"at":%q,"ok":true,"category":"OK"}`, scraped.Format(time.RFC3339)),
		"Content-Type", "application/json", shared.HeaderAPIKey, testKey)
	if r.status != http.StatusNoContent {
		t.Fatalf("scraper status = %d %s", r.status, r.body)
	}
	r = send(t, http.MethodGet, base+shared.PathUsage, "", "Authorization", "Bearer "+testToken)
	var u shared.UsageResponse
	r.decode(t, &u)
	if r.status != http.StatusOK || u.VersionInfo.ID != pr.ID || u.Meters[0].PercentUsed != 42 || u.IsStale {
		t.Fatalf("GET = %d %s", r.status, r.body)
	}
	var h shared.HealthResponse
	r = send(t, http.MethodGet, base+shared.PathHealth, "")
	r.decode(t, &h)
	if r.status != http.StatusOK || h.Status != shared.HealthHealthy || h.VersionCount != 1 {
		t.Fatalf("health = %d %s", r.status, r.body)
	}
	if r := send(t, http.MethodGet, base+shared.PathMetrics, ""); r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`usage_versions{account="default"} 1`)) {
		t.Errorf("metrics = %d, missing usage_versions", r.status)
	}

	if err := p.stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.Log.String())
	}
	logs := p.Log.String()
	if strings.Contains(logs, testKey) || strings.Contains(logs, testToken) {
		t.Error("a key appears in the log")
	}
	var sawListening, sawStopped bool
	for _, l := range logLines(t, p.Log.String()) {
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := l[k]; !ok {
				t.Errorf("log line without %s: %v", k, l)
			}
		}
		switch {
		case strings.HasPrefix(fmt.Sprint(l["msg"]), "listening on "):
			sawListening = l["addr"] == p.addr && l["component"] == "server"
		case l["msg"] == "stopped":
			sawStopped = true
		case l["msg"] == "request":
			if l["requestId"] == "" || l["route"] == nil || l["durationMs"] == nil {
				t.Errorf("access log line lacks fields: %v", l)
			}
		}
	}
	if !sawListening || !sawStopped {
		t.Errorf("log lacks listening (%v) or stopped (%v):\n%s", sawListening, sawStopped, logs)
	}

	// A restart on the same directory keeps data, idempotency keys and the
	// scraper status.
	p2 := startServer(t, args...)
	base = "http://" + p2.addr
	r = send(t, http.MethodPost, base+shared.PathUsage, snap("default", scraped, 42),
		"Content-Type", "application/json", shared.HeaderAPIKey, testKey, shared.HeaderIdempotencyKey, "proc-1")
	if r.status != http.StatusOK || r.header.Get(shared.HeaderIdempotentReplayed) != "true" {
		t.Errorf("replay after restart = %d %s", r.status, r.body)
	}
	r = send(t, http.MethodGet, base+shared.PathUsage, "", "Authorization", "Bearer "+testToken)
	r.decode(t, &u)
	if u.VersionInfo.ID != pr.ID || u.Scraper == nil || !u.Scraper.OK {
		t.Errorf("after restart GET = %s", r.body)
	}
	if err := p2.stop(); err != nil {
		t.Fatalf("second exit: %v", err)
	}
}

func TestProcessRefusesToStart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"no write key", []string{"--read-token", testToken}, nil, "no write key"},
		{"no read token", []string{"--api-key", testKey}, nil, "no read token"},
		{"empty env key", []string{"--public-read"}, []string{"USAGE_API_KEY="}, "no write key"},
		{"short write key", []string{"--api-key", "short-key", "--public-read"}, nil, "at least 16"},
		{"read token equals write key", []string{"--api-key", testKey}, []string{"USAGE_READ_TOKEN=" + testKey}, "equals the write key"},
		{"address in use", nil, nil, "listening on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--data-dir", t.TempDir(), "--addr", "127.0.0.1:0"}, tt.args...)
			if tt.name == "address in use" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				args = append(args, "--addr", ln.Addr().String(), "--api-key", testKey, "--public-read")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, serverBin, args...)
			cmd.Env = baseEnv(tt.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Fatalf("exit = %v, want a non-zero exit", err)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, stderr.String())
			}
		})
	}
}

func TestProcessHelp(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(serverBin, "--help")
	// No USAGE_* variables: --help shows environment values as defaults,
	// and this test checks the built-in ones.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	checkHelp(t, string(out))
}

func TestServeFinishesInFlightWrites(t *testing.T) {
	t.Parallel()
	fs := &faultStore{saveBlock: make(chan struct{}), saveEntered: make(chan struct{}, 1)}
	e := newEnv(t, wrapStore(func(st storeT) storeT { fs.Store = st; return fs }))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- serve(ctx, e.srv, ln, 10*time.Second, slog.New(slog.DiscardHandler)) }()

	posted := make(chan resp, 1)
	go func() {
		posted <- send(t, http.MethodPost, "http://"+addr+shared.PathUsage, snap("default", t0, 9),
			"Content-Type", "application/json", shared.HeaderAPIKey, testKey)
	}()
	select {
	case <-fs.saveEntered:
	case <-time.After(10 * time.Second):
		t.Fatal("the POST never reached the store")
	}
	cancel() // SIGTERM in main
	// Shutdown has begun once the listener refuses new connections; the
	// write is still held in the store.
	refused := false
	for range 500 {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			refused = true
			break
		}
		c.Close()
		time.Sleep(2 * time.Millisecond)
	}
	if !refused {
		t.Fatal("the listener still accepts connections after shutdown began")
	}
	select {
	case <-served:
		t.Fatal("serve returned while a write was in flight")
	default:
	}
	close(fs.saveBlock)
	r := <-posted
	if r.status != http.StatusCreated {
		t.Errorf("in-flight POST = %d %s, want 201", r.status, r.body)
	}
	if err := <-served; err != nil {
		t.Errorf("serve = %v", err)
	}
	if got := e.st.Count("default"); got != 1 {
		t.Errorf("stored versions = %d, want 1", got)
	}
}

// --log-format: text lines for a person, JSON for a journal or a pipe
// (auto, which is what a test's pipe gets).
func TestProcessLogFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		wantText bool
	}{
		{"auto on a pipe", nil, false},
		{"json", []string{"--log-format", "json"}, false},
		{"text", []string{"--log-format", "text"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--api-key", testKey,
				"--public-read", "--web-dir", t.TempDir()}, tt.args...)
			p := startServer(t, args...)
			if err := p.stop(); err != nil {
				t.Fatalf("exit: %v\n%s", err, p.Log)
			}
			var started string
			for _, l := range strings.Split(p.Log.String(), "\n") {
				if strings.Contains(l, "listening on") && !strings.HasPrefix(l, "listening on ") {
					started = l
				}
			}
			if tt.wantText {
				if !strings.HasPrefix(started, "time=") || !strings.Contains(started, `level=INFO msg="listening on `+p.addr+`"`) {
					t.Errorf("start line is not a text line: %q", started)
				}
				return
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(started), &m); err != nil || m["component"] != "server" {
				t.Errorf("start line is not JSON: %q (%v)", started, err)
			}
		})
	}
}
