//go:build !js

// Package widget_test drives the real widget in real headless Chromium
// against the real usage-server binary: data appears, the server goes away
// and comes back, the breaker opens and counts down, no data, stale data,
// an offline reload, and the refresh button while the breaker is open.
package widget_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	scraperbrowser "github.com/claude-usage/widget/scraper/browser"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/claude-usage/widget/internal/testbin"
	"github.com/claude-usage/widget/internal/testutil"
)

const (
	apiKey    = "e2e-write-key-0123456789"
	readToken = "e2e-read-token-0123456789"
)

var (
	serverBin string // usage-server
	webDir    string // with app.wasm(.br/.gz), icons, CSS
	repoRoot  string
	shotDir   string
	browser   context.Context // one Chromium for the whole package
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if repoRoot, err = testutil.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "widget-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	if serverBin, err = testbin.Locate(tmp, "usage-server"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if webDir, err = locateWeb(tmp); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	shotDir = filepath.Join(repoRoot, ".artifacts", "screenshots")
	if err := os.MkdirAll(shotDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}

	chrome := os.Getenv("CHROME_PATH")
	if chrome == "" {
		chrome = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chrome); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: Chromium not found at %s (run scripts/ensure-chromium.sh or set CHROME_PATH): %v\n", chrome, err)
		return 1
	}
	// The scraper's own options: headless, background networking off,
	// no sandbox as root.
	opts := append(scraperbrowser.AllocatorOptions(chrome, filepath.Join(tmp, "profile"), true), chromedp.WindowSize(480, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting Chromium:", err)
		return 1
	}
	browser = bctx
	return m.Run()
}

// locateWeb uses $USAGE_WEB_DIR when it holds app.wasm, else builds the
// widget and precompresses it into a copy of web/.
func locateWeb(tmp string) (string, error) {
	if d := os.Getenv("USAGE_WEB_DIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "app.wasm")); err == nil {
			return d, nil
		}
	}
	dir := filepath.Join(tmp, "web")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	src := filepath.Join(repoRoot, "web")
	entries, err := os.ReadDir(src)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), "app.wasm") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			return "", err
		}
	}
	wasm := filepath.Join(dir, "app.wasm")
	build := exec.Command("go", "build", "-trimpath", "-gcflags=all=-l", "-ldflags=-s -w", "-o", wasm, "./cmd/widget")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building app.wasm: %v\n%s", err, out)
	}
	pre := exec.Command("go", "run", "./cmd/precompress", wasm)
	pre.Dir = repoRoot
	if out, err := pre.CombinedOutput(); err != nil {
		return "", fmt.Errorf("precompressing app.wasm: %v\n%s", err, out)
	}
	return dir, nil
}

// server is one usage-server process; a restart keeps its port and data.
type server struct {
	t       *testing.T
	addr    string
	dataDir string
	proc    *testutil.Process
}

// startServer runs usage-server on a free 127.0.0.1 port with short widget
// timings; extra flags override them. The test's cleanup stops it.
func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	s := &server{t: t, addr: testutil.FreeAddr(t), dataDir: t.TempDir()}
	args := append([]string{
		"--addr", s.addr, "--data-dir", s.dataDir,
		"--api-key", apiKey, "--read-token", readToken, "--web-dir", webDir,
		"--widget-refresh", "2s", "--widget-retry-delay", "300ms",
		"--widget-breaker-threshold", "3", "--widget-breaker-cooldown", "5s",
		"--rate-limit", "0",
	}, extra...)
	s.proc = testutil.StartProcess(t, serverBin, args, testutil.ProcessOptions{})
	s.waitReady()
	return s
}

func (s *server) url() string { return "http://" + s.addr }

func (s *server) waitReady() {
	s.t.Helper()
	if err := s.proc.WaitHTTP(s.url()+"/api/health", 10*time.Second); err != nil {
		s.t.Fatal(err)
	}
}

// start runs the stopped process again and waits until it answers.
func (s *server) start() {
	s.t.Helper()
	s.proc.Restart()
	s.waitReady()
}

// stop ends the process (SIGTERM, then SIGKILL).
func (s *server) stop() { s.proc.Stop() }

type meter struct {
	ID          string     `json:"id"`
	Label       string     `json:"label"`
	PercentUsed float64    `json:"percentUsed"`
	ResetsAt    *time.Time `json:"resetsAt,omitempty"`
}

// post stores a snapshot of the default account scraped age ago.
func (s *server) post(age time.Duration, meters ...meter) {
	s.t.Helper()
	s.postAccount("default", age, meters...)
}

func (s *server) postAccount(account string, age time.Duration, meters ...meter) {
	s.t.Helper()
	now := time.Now().UTC()
	if len(meters) == 0 {
		r1 := now.Add(2*time.Hour + 10*time.Minute)
		r2 := now.Add(5 * 24 * time.Hour)
		meters = []meter{
			{"session", "Current session", 42, &r1},
			{"weekly_all", "All models", 78, &r2},
			{"weekly_opus", "Opus only", 93, &r2},
		}
	}
	body, _ := json.Marshal(map[string]any{
		"account": account, "scrapedAt": now.Add(-age).Format(time.RFC3339), "capture": "api",
		"meters":     meters,
		"extraUsage": map[string]any{"enabled": true, "usedCents": 1250, "limitCents": 5000, "currency": "USD"},
	})
	s.postJSON("/api/claude/console-usage", body, http.StatusCreated)
}

func (s *server) postJSON(path string, body []byte, want int) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.url()+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("POST %s = %d, want %d: %s", path, resp.StatusCode, want, b)
	}
}

// tab is one browser tab with its console and request records.
type tab struct {
	t      *testing.T
	ctx    context.Context
	origin string

	mu       sync.Mutex
	errors   []string
	logs     []string
	requests []string
}

func newTab(t *testing.T, origin string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	tb := &tab{t: t, ctx: ctx, origin: origin}
	t.Cleanup(func() {
		cancel()
		tb.checkClean()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Listen(ctx, tb.record); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	// The Log domain carries the browser's own errors, CSP violations
	// among them, which never reach the console API.
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	return tb
}

func (tb *tab) record(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range ev.Args {
			if len(a.Value) > 0 {
				var s string
				if json.Unmarshal(a.Value, &s) == nil {
					parts = append(parts, s)
					continue
				}
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		line := strings.Join(parts, " ")
		tb.logs = append(tb.logs, line)
		if ev.Type == runtime.ConsoleAPICalledTypeError || strings.Contains(line, `"level":"ERROR"`) ||
			strings.Contains(line, "panic:") {
			tb.errors = append(tb.errors, "console: "+line)
		}
	case *runtime.EventExceptionThrown:
		msg := ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
		tb.errors = append(tb.errors, "exception: "+msg)
	case *cdplog.EventEntryAdded:
		// Failed requests (401, 404, refused while the server is down)
		// are part of the scenarios; everything else is a page error.
		if ev.Entry.Level == cdplog.EntryLevelError && ev.Entry.Source != cdplog.EntrySourceNetwork {
			tb.errors = append(tb.errors, "browser: "+string(ev.Entry.Source)+": "+ev.Entry.Text)
		}
	case *network.EventRequestWillBeSent:
		tb.requests = append(tb.requests, ev.Request.URL)
	}
}

// checkClean fails the test on console errors, uncaught exceptions and any
// request to a host other than the server.
func (tb *tab) checkClean() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, e := range tb.errors {
		tb.t.Errorf("page error: %s", e)
	}
	for _, r := range tb.requests {
		u, err := url.Parse(r)
		if err != nil {
			tb.t.Errorf("unparsable request URL %q", r)
			continue
		}
		if u.Scheme == "data" || u.Scheme == "blob" {
			continue
		}
		if u.Scheme+"://"+u.Host != tb.origin {
			tb.t.Errorf("request to another host: %s", r)
		}
	}
	if len(tb.requests) == 0 {
		tb.t.Error("no request recorded: the network listener is not working")
	}
}

// apiRequests counts the widget's requests for the latest usage so far.
func (tb *tab) apiRequests() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	n := 0
	for _, r := range tb.requests {
		// The latest usage only: the stream, history and windows have
		// paths of their own below it.
		if u, err := url.Parse(r); err == nil && u.Path == "/api/claude/console-usage" {
			n++
		}
	}
	return n
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatal(err)
	}
}

func (tb *tab) eval(js string) string {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

const statusJS = `(document.getElementById("status-text") || {}).textContent || ""`

func (tb *tab) status() string { return tb.eval(statusJS) }

func (tb *tab) text() string { return tb.eval(`document.body ? document.body.innerText : ""`) }

// waitFor polls the page's JS predicate (a string result) until ok accepts
// it, every 25 ms, at most timeout.
func (tb *tab) waitFor(what, js string, timeout time.Duration, ok func(string) bool) string {
	tb.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](js))
		if err == nil {
			last = v
			if ok(v) {
				return v
			}
		}
		if time.Now().After(deadline) {
			tb.shot("timeout-" + sanitize(tb.t.Name()))
			tb.mu.Lock()
			logs := strings.Join(tb.logs, "\n")
			tb.mu.Unlock()
			tb.t.Fatalf("waiting %v for %s: last value %q\npage: %s\nconsole:\n%s", timeout, what, last, tb.text(), logs)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (tb *tab) waitStatus(want string, timeout time.Duration) {
	tb.t.Helper()
	tb.waitFor("status "+want, statusJS, timeout, func(s string) bool { return s == want })
}

func (tb *tab) waitMeters(n int, timeout time.Duration) {
	tb.t.Helper()
	tb.waitFor(fmt.Sprintf("%d meters", n), `String(document.querySelectorAll("li.meter").length)`, timeout,
		func(s string) bool { return s == fmt.Sprint(n) })
}

func (tb *tab) shot(name string) {
	buf, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(shotDir, name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		tb.t.Logf("screenshot %s: %v", name, err)
	}
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(tb.origin + path))
}

func (tb *tab) emulate(width int64, dark bool) {
	tb.t.Helper()
	scheme := "light"
	if dark {
		scheme = "dark"
	}
	if _, err := chromedp.Call(tb.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
	}); err != nil {
		tb.t.Fatal(err)
	}
	tb.do(chromedp.EmulateViewport(width, 800))
}
