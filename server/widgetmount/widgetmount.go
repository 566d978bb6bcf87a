//go:build !wasm

// Package widgetmount serves the go-app widget from the fiber server: the
// page routes through go-app's handler, the files under /web/ from the web
// directory, and app.wasm precompressed by fasthttp's file server. The API
// routes stay native fiber handlers; this package only adds page routes.
//
// app.wasm.br and app.wasm.gz (written by cmd/precompress after each build)
// are sent to clients that accept them. A compressed copy older than
// app.wasm by a second or more is stale: fasthttp compresses app.wasm again
// in its place when the directory is writable and sends app.wasm raw when
// it is not, so a rebuild while the server runs is served as built.
package widgetmount

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/valyala/fasthttp"

	widget "github.com/claude-usage/widget/app"
	"github.com/claude-usage/widget/shared"
)

// Options are the widget's settings, passed from the server's flags.
type Options struct {
	WebDir           string        // directory with app.wasm(.br/.gz), icons, CSS
	Refresh          time.Duration // --widget-refresh (60s)
	RetryDelay       time.Duration // --widget-retry-delay (2s)
	BreakerThreshold int           // --widget-breaker-threshold (3)
	BreakerCooldown  time.Duration // --widget-breaker-cooldown (60s)
	Version          string        // build version, busts the service worker cache
	// Logger receives the warning about a missing app.wasm (JSON on
	// stderr when nil, like the server's own log).
	Logger *slog.Logger
}

// PagePaths are the paths go-app's handler answers: the widget's page and
// the PWA files it generates. Everything under /web/ is served from
// WebDir by this package.
var PagePaths = []string{
	"/", "/app.js", "/goapp.js", "/wasm_exec.js", "/app-worker.js",
	"/manifest.webmanifest", "/manifest.json", "/app.css",
}

// Widget is the widget's routes, ready to be mounted.
type Widget struct {
	dir     string
	page    http.Handler // go-app's: the page and the PWA files
	wasm    fasthttp.RequestHandler
	scripts []string // sha256 sources of the page's inline scripts
	appJS   []byte   // go-app's loader, streaming app.wasm natively
	appJSCT string
}

// Mount registers the widget's page and asset routes on f. Call it after
// the API routes and before the catch-all 404 handler. A web directory
// without app.wasm is not an error: the page is served and /web/app.wasm
// answers 404 with a message saying how to build it.
func (h *Widget) Mount(f *fiber.App) {
	f.Get("/web/app.wasm", h.serveWasm)
	f.Get(WorkerPath, serveWorker)
	f.Get("/web/*", h.serveStatic)
	page := adaptor.HTTPHandler(h.page)
	if h.appJS != nil {
		f.Get("/app.js", h.serveAppJS)
	}

	for _, p := range PagePaths {
		f.Get(p, page)
	}
}

// InlineScriptHashes are the CSP sources ('sha256-…') of every inline
// script in the page go-app renders, so that the policy allows exactly
// those and no other inline code.
func (h *Widget) InlineScriptHashes() []string { return append([]string(nil), h.scripts...) }

// New checks the web directory and builds go-app's handler.
func New(opts Options) (*Widget, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	log = log.With("component", "widgetmount")
	dir := opts.WebDir
	if dir == "" {
		dir = "web"
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("widgetmount: web dir %q: %w", opts.WebDir, err)
	}
	version := opts.Version
	if version == "" {
		version = "dev"
	}
	sum, err := hashFile(filepath.Join(dir, "app.wasm"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		log.Warn("app.wasm is not built: the widget page will not start; run `make wasm`", "webDir", dir)
	case err != nil:
		return nil, err
	default:
		// The service worker caches by version: a rebuilt app.wasm under
		// the same build version must still replace the cached one.
		version += "-" + sum[:12]
	}
	page := widget.NewHandler(widget.HandlerOptions{
		Settings: widget.Settings{
			Refresh:          opts.Refresh,
			RetryDelay:       opts.RetryDelay,
			BreakerThreshold: opts.BreakerThreshold,
			BreakerCooldown:  opts.BreakerCooldown,
		},
		Version: version,
	})
	wasmFS := &fasthttp.FS{
		Root:                   dir,
		Compress:               true,
		CompressBrotli:         true,
		CompressedFileSuffixes: map[string]string{"br": ".br", "gzip": ".gz"},
		// Every request looks at the files, so a rebuild is served at
		// once; opening two files costs far less than sending one.
		SkipCache:   true,
		PathRewrite: fasthttp.NewPathPrefixStripper(len("/web")),
	}
	scripts, err := inlineScriptHashes(page)
	if err != nil {
		return nil, err
	}
	w := &Widget{dir: dir, page: page, wasm: wasmFS.NewRequestHandler(), scripts: scripts}
	js, ct, err := render(page, "/app.js")
	if err != nil {
		return nil, err
	}
	if off, ok := CompileWasmOffThread(js); ok {
		w.appJS, w.appJSCT = off, ct
	} else {
		log.Warn("go-app's loader has changed: app.wasm compiles on the page's main thread")
	}
	return w, nil
}

// goappCompile is go-app's call that streams app.wasm into
// WebAssembly.instantiateStreaming on the page, through a JavaScript
// ReadableStream counting bytes for the loading label.
var goappCompile = regexp.MustCompile(`instantiateStreaming\(\s*fetchWithProgress\(("[^"]+"), showProgress\),\s*go\.importObject\s*\)`)

// CompileWasmOffThread rewrites go-app's loader to compile app.wasm in a
// dedicated worker (web/wasm-compile.js) and only instantiate it on the
// page. Streaming compilation on the page decodes every chunk of the
// 9 MB module on the main thread, and go-app's counting stream relays
// each chunk through JavaScript with a relayout of the label: in
// Chromium traces those were the page's largest tasks after Go's own
// start-up (the "Unattributable" long tasks of Lighthouse's report).
// Where a worker cannot compile, the page compiles as go-app does. The
// label loses its percentage; the spinner stays.
func CompileWasmOffThread(js []byte) ([]byte, bool) {
	if !goappCompile.Match(js) {
		return js, false
	}
	out := goappCompile.ReplaceAll(js, []byte("goappInstantiateOffThread($1, go.importObject, instantiateStreaming)"))
	return append(out, offThreadJS...), true
}

// offThreadJS runs on the page. The worker also reports when app.wasm's
// response ended, as a performance mark on the page's timeline: the
// module's Resource Timing entry is the worker's, which the page cannot
// see, and the widget's tests and bench compare the first data request
// with it.
const offThreadJS = `
// Added by usage-server (widgetmount.CompileWasmOffThread).
function goappInstantiateOffThread(url, importObject, instantiateStreaming) {
  const here = () => instantiateStreaming(fetch(url), importObject);
  if (typeof Worker === "undefined" || !WebAssembly.compileStreaming) {
    return here();
  }
  return new Promise((resolve) => {
    let w;
    try {
      w = new Worker("` + WorkerPath + `");
    } catch (err) {
      console.warn("compiling app.wasm in a worker failed; compiling it on the page:", String(err));
      resolve(here());
      return;
    }
    const fallback = (why) => {
      w.terminate();
      console.warn("compiling app.wasm in a worker failed; compiling it on the page:", why);
      resolve(here());
    };
    w.onerror = (e) => fallback(e.message || "the worker did not start");
    w.onmessage = (e) => {
      if (!e.data.module) {
        fallback(e.data.error);
        return;
      }
      w.terminate();
      if (e.data.responseEnd) {
        performance.mark("` + WasmResponseEndMark + `", { startTime: e.data.responseEnd - performance.timeOrigin });
      }
      // go.run starts in a task of its own, not in the one that
      // instantiated the module.
      resolve(WebAssembly.instantiate(e.data.module, importObject).then(
        (instance) => new Promise((next) => setTimeout(() => next({ instance }), 0))));
    };
    w.postMessage(url);
  });
}
`

const (
	// WorkerPath is the worker that compiles app.wasm (wasm-compile.js,
	// embedded).
	WorkerPath = "/web/wasm-compile.js"
	// WasmResponseEndMark is the performance mark at the end of
	// app.wasm's response, set on the page when the worker compiled it.
	WasmResponseEndMark = "app.wasm responseEnd"
)

// workerJS is the worker app.js starts. It lives in the binary with the
// rewrite that calls it, so a web directory from another build cannot
// split the two.
//
//go:embed wasm-compile.js
var workerJS []byte

func serveWorker(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "text/javascript; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Send(workerJS)
}

// serveAppJS sends the rewritten loader with go-app's own headers.
func (h *Widget) serveAppJS(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, h.appJSCT)
	return c.Send(h.appJS)
}

// render answers GET path from go-app's handler, for files it generates
// once from its settings.
func render(page http.Handler, path string) ([]byte, string, error) {
	rec := httptest.NewRecorder()
	page.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		return nil, "", fmt.Errorf("widgetmount: rendering %s: status %d", path, rec.Code)
	}
	return rec.Body.Bytes(), rec.Header().Get("Content-Type"), nil
}

// hashFile returns the hex sha256 of the file at path.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("widgetmount: reading app.wasm: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("widgetmount: reading app.wasm: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// serveWasm sends app.wasm through fasthttp's file server, which picks
// app.wasm.br or .gz by Accept-Encoding and sets Content-Encoding.
func (h *Widget) serveWasm(c *fiber.Ctx) error {
	req := &c.Request().Header
	// fasthttp looks for the coding's name only; a client that refuses
	// one with q=0 must not get it.
	accept := string(req.Peek(fiber.HeaderAcceptEncoding))
	switch {
	case acceptsEncoding(accept, "br"):
		req.Set(fiber.HeaderAcceptEncoding, "br")
	case acceptsEncoding(accept, "gzip"):
		req.Set(fiber.HeaderAcceptEncoding, "gzip")
	default:
		req.Del(fiber.HeaderAcceptEncoding)
	}
	h.wasm(c.Context())
	if c.Response().StatusCode() == fiber.StatusNotFound {
		c.Response().ResetBody()
		return errWasmMissing()
	}
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return nil
}

func errWasmMissing() error {
	return &shared.Error{Code: shared.CodeNotFound,
		Message:    "app.wasm is not built on this server",
		Suggestion: "Run `make wasm` (or `make build`) and restart the server with --web-dir pointing at web/."}
}

// acceptsEncoding reports whether an Accept-Encoding header allows enc
// (a q=0 refuses it).
func acceptsEncoding(header, enc string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), enc) && strings.TrimSpace(name) != "*" {
			continue
		}
		params = strings.ReplaceAll(params, " ", "")
		if params == "q=0" || params == "q=0.0" || params == "q=0.00" || params == "q=0.000" {
			return false
		}
		return true
	}
	return false
}

// serveStatic sends a file from the web directory. Only plain names of
// regular files are served: no dot files, no directories, no traversal,
// and app.wasm only through serveWasm.
func (h *Widget) serveStatic(c *fiber.Ctx) error {
	name := c.Params("*")
	clean := filepath.ToSlash(filepath.Clean("/" + name))[1:]
	if clean == "" || clean != name || strings.HasPrefix(filepath.Base(clean), ".") ||
		strings.HasPrefix(clean, "app.wasm") {
		return c.Next()
	}
	p := filepath.Join(h.dir, filepath.FromSlash(clean))
	info, err := os.Stat(p)
	if err != nil || !info.Mode().IsRegular() {
		return c.Next()
	}
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.SendFile(p)
}

// scriptTag is an HTML script element; go-app writes them itself, so this
// is the page's own markup, not arbitrary HTML.
var scriptTag = regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script\s*>`)

// inlineScriptHashes renders the page once and hashes each inline script
// as CSP expects: base64 of the sha256 of the exact text between the tags.
func inlineScriptHashes(page http.Handler) ([]string, error) {
	html, _, err := render(page, "/")
	if err != nil {
		return nil, fmt.Errorf("%w (for the page's CSP)", err)
	}
	return ScriptHashes(string(html)), nil
}

// ScriptHashes returns the CSP hash source of every inline script in html
// (a script with a src attribute is not inline).
func ScriptHashes(html string) []string {
	var out []string
	for _, m := range scriptTag.FindAllStringSubmatch(html, -1) {
		if srcAttr.MatchString(m[1]) {
			continue
		}
		sum := sha256.Sum256([]byte(m[2]))
		out = append(out, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	return out
}

var srcAttr = regexp.MustCompile(`(?i)(^|\s)src\s*=`)
