//go:build !js

package widget_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/claude-usage/widget/server/widgetmount"
)

// startupJS runs app.wasm under Node with a chain of setTimeout(0) ticks
// started before the module: a tick can only print while Go has handed
// the event loop back, so the ticks between the inittrace lines show how
// the start-up is cut into tasks.
const startupJS = `
require(process.argv[2]);
const go = new Go();
go.env = { GODEBUG: "inittrace=1" };
let n = 0;
const tick = () => { process.stderr.write("TICK\n"); if (++n < 20) setTimeout(tick, 0); };
WebAssembly.instantiate(require("fs").readFileSync(process.argv[3]), go.importObject).then((r) => {
  setTimeout(tick, 0);
  go.run(r.instance);
  // go-app needs a DOM past main's first yield; the inits are done by then.
  setTimeout(() => process.exit(0), 3000);
});
`

// TestStartupYields holds the start-up of the built app.wasm to its three
// init tasks (cmd/widget/internal/inityield): the runtime and the first
// inits; then from unicode to crypto/x509/pkix; then the rest up to main,
// which yields again before go-app starts. A change in the linker's init
// order, or a new heavy import, shows here as inits in the wrong task.
func TestStartupYields(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed to run app.wasm outside the browser: %v", err)
	}
	script := filepath.Join(t.TempDir(), "startup.js")
	if err := os.WriteFile(script, []byte(startupJS), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, node, script,
		filepath.Join(goruntime.GOROOT(), "lib", "wasm", "wasm_exec.js"), filepath.Join(webDir, "app.wasm")).CombinedOutput()

	// tasks[i] lists the packages whose init finished in the i-th task.
	tasks := [][]string{nil}
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case line == "TICK":
			if len(tasks[len(tasks)-1]) > 0 {
				tasks = append(tasks, nil)
			}
		case strings.HasPrefix(line, "init "):
			pkg, _, _ := strings.Cut(strings.TrimPrefix(line, "init "), " ")
			tasks[len(tasks)-1] = append(tasks[len(tasks)-1], pkg)
		}
	}
	in := func(pkg string) int {
		for i, task := range tasks {
			if slices.Contains(task, pkg) {
				return i
			}
		}
		return -1
	}
	const yield = "github.com/claude-usage/widget/cmd/widget/internal/inityield"
	// A yielding init finishes in the task after the one that ran up to it.
	for _, c := range []struct {
		pkg  string
		task int
	}{
		{"runtime", 0},
		{"syscall/js", 0},
		{yield, 1},
		{"unicode", 1},
		{"crypto/x509/pkix", 1},
		{yield + "/second", 2},
		{"net/http", 2},
		{"github.com/claude-usage/widget/app", 2},
	} {
		if got := in(c.pkg); got != c.task {
			t.Errorf("init of %s finished in task %d, want %d", c.pkg, got, c.task)
		}
	}
	if t.Failed() {
		t.Logf("tasks: %q\noutput:\n%s", tasks, out)
	}
}

// TestWasmCompilesOnThePageWhenTheWorkerFails: where the compile worker
// cannot start (here it is pointed at a script that does not exist), the
// widget still loads, compiled on the page as go-app does.
func TestWasmCompilesOnThePageWhenTheWorkerFails(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	s.post(time.Minute)
	tb := newTab(t, s.url())
	if _, err := chromedp.Call(tb.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `{ const W = window.Worker; window.Worker = function (url, opts) { return new W(url + ".missing", opts); }; }`,
	}); err != nil {
		t.Fatal(err)
	}
	tb.open("/#token=" + readToken)
	tb.waitMeters(3, firstLoad)
	if got := tb.eval(`String(performance.getEntriesByName("` + widgetmount.WasmResponseEndMark + `").length)`); got != "0" {
		t.Errorf("%s marks = %s, want 0: the worker did not start", widgetmount.WasmResponseEndMark, got)
	}
	tb.mu.Lock()
	logged := strings.Join(tb.logs, "\n")
	tb.mu.Unlock()
	if !strings.Contains(logged, "compiling app.wasm in a worker failed; compiling it on the page") {
		t.Errorf("no fallback warning in the console:\n%s", logged)
	}
}
