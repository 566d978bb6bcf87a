package server

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
)

// fakeScraper stands in for bin/usage-scraper under make run: it reports a
// failed sync, then a successful one once the test creates the file "go",
// the way the real scraper logs in text format.
const fakeScraper = `#!/bin/sh
echo "fake-scraper args: $*"
echo 'time=2026-12-01T00:00:00Z level=WARN msg="snapshot not synced; it stays in the outbox" attempts=4'
for i in $(seq 1 600); do [ -e go ] && break; sleep 0.05; done
echo 'time=2026-12-01T00:00:01Z level=INFO msg="snapshot synced" attempts=1'
exec sleep 300
`

// runLocalTree lays out what scripts/run-local.sh expects in a fresh
// directory (it works in the directory above its own): the real script and
// server binary, a fake scraper and an empty web directory.
func runLocalTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	script, err := os.ReadFile(filepath.Join(testutil.MustRepoRoot(t), "scripts", "run-local.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"scripts", "bin", "web"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{"scripts/run-local.sh": string(script), "bin/usage-scraper": fakeScraper}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(serverBin, filepath.Join(dir, "bin", "usage-server")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startRunLocal(t *testing.T, dir, addr string) *testutil.Process {
	t.Helper()
	return testutil.StartProcess(t, "bash", []string{filepath.Join(dir, "scripts", "run-local.sh")},
		testutil.ProcessOptions{Env: baseEnv("USAGE_ADDR="+addr, "DEMO_INTERVAL=1s"), Dir: dir})
}

// Someone else's server on the port answers health with 200: make run must
// not start the scraper against it or print a URL, and must say which
// setting moves it elsewhere.
func TestRunLocalStopsOnABusyPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	other := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"healthy"}`))
	})}
	go func() { _ = other.Serve(ln) }()
	t.Cleanup(func() { _ = other.Close() })

	p := startRunLocal(t, runLocalTree(t), ln.Addr().String())
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("make run did not stop on a busy port:\n%s", p.Log)
	}
	if p.ExitErr() == nil {
		t.Errorf("make run exited 0 on a busy port")
	}
	out := p.Log.String()
	for _, want := range []string{"already in use", "USAGE_ADDR="} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not say %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"Widget:", "fake-scraper args"} {
		if strings.Contains(out, bad) {
			t.Errorf("output has %q: the scraper was started against someone else's server:\n%s", bad, out)
		}
	}
}

// The happy path: our server's own address, readable text logs, a hex
// token, and the widget URL again after the first successful sync, not
// after a failed one.
func TestRunLocalPrintsTheWidgetAgainWhenReady(t *testing.T) {
	t.Parallel()
	dir := runLocalTree(t)
	p := startRunLocal(t, dir, "127.0.0.1:0")
	if err := p.WaitLine("Widget:", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^listening on 127\.0\.0\.1:(\d+)$`).FindStringSubmatch(p.Log.String())
	if m == nil {
		t.Fatalf("no listening line from the server:\n%s", p.Log)
	}
	token, err := os.ReadFile(filepath.Join(dir, "data", ".read-token"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32,}$`).Match(token) {
		t.Errorf("read token %q is not hex", token)
	}
	url := "http://127.0.0.1:" + m[1] + "/#token=" + string(token)
	if out := p.Log.String(); !strings.Contains(out, "Widget:  "+url) {
		t.Errorf("widget URL %s not printed:\n%s", url, out)
	}
	if err := p.WaitLine("fake-scraper args:", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	out := p.Log.String()
	for _, want := range []string{"--log-format text", "--server http://127.0.0.1:" + m[1] + " "} {
		if !strings.Contains(out, want) {
			t.Errorf("scraper not started with %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^time=\S+ level=INFO msg="listening on `).MatchString(out) {
		t.Errorf("the server's log is not text lines:\n%s", out)
	}

	// The script looks every 0.5 s; three looks after a failed sync must
	// not announce the widget.
	if err := p.WaitLine("snapshot not synced", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if p.Log.Contains("Widget ready") {
		t.Fatalf("widget announced ready after a failed sync:\n%s", p.Log)
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitLine("Widget ready: "+url, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	p.Stop()
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+m[1], time.Second); err == nil {
		c.Close()
		t.Errorf("the server still listens after make run stopped")
	}
}
