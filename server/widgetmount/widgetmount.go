//go:build !wasm

// Package widgetmount serves the go-app widget from the fiber server: the
// page routes through go-app's handler and app.wasm precompressed. The API
// routes stay native fiber handlers; this package only adds page routes.
package widgetmount

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

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

// wasmFile describes app.wasm and the precompressed copies that belong to
// it. Only names, sizes and hashes stay in memory: the 12 MB of the three
// files would be most of the server's RSS, and they are served from disk,
// where the page cache keeps them.
type wasmFile struct {
	dir     string
	rawSize int64
	etag    string            // sha256 of app.wasm, hex
	encs    map[string]string // content coding -> file name (br, gzip)
	stamps  map[string]stamp  // file name -> what was checked
}

// stamp identifies the version of a file that was checked.
type stamp struct {
	size int64
	mod  time.Time
}

func stampOf(info fs.FileInfo) stamp { return stamp{info.Size(), info.ModTime()} }

// Mount registers the widget's page and asset routes on f. Call it after
// the API routes and before the catch-all 404 handler. A web directory
// without app.wasm is not an error: the page is served and /web/app.wasm
// answers 404 with a message saying how to build it.
func Mount(f *fiber.App, opts Options) error {
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
		return fmt.Errorf("widgetmount: web dir %q: %w", opts.WebDir, err)
	}

	wasm, err := loadWasm(dir, func(name string) {
		log.Warn(name+" does not match app.wasm and is not served: run `make wasm` to rebuild it", "webDir", dir)
	})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		log.Warn("app.wasm is not built: the widget page will not start; run `make wasm`",
			"webDir", dir)
	case err != nil:
		return err
	}

	version := opts.Version
	if version == "" {
		version = "dev"
	}
	var rawSize int64
	if wasm != nil {
		// The service worker caches by version: a rebuilt app.wasm under
		// the same build version must still replace the cached one.
		version += "-" + wasm.etag[:12]
		rawSize = wasm.rawSize
	}
	served := &wasmServer{cur: wasm, log: log}
	h := widget.NewHandler(widget.HandlerOptions{
		Settings: widget.Settings{
			Refresh:          opts.Refresh,
			RetryDelay:       opts.RetryDelay,
			BreakerThreshold: opts.BreakerThreshold,
			BreakerCooldown:  opts.BreakerCooldown,
		},
		Version:     version,
		WasmRawSize: rawSize,
	})

	f.Get("/web/app.wasm", served.serve)
	f.Get("/web/*", func(c *fiber.Ctx) error { return serveStatic(c, dir) })
	page := adaptor.HTTPHandler(h)
	for _, p := range PagePaths {
		f.Get(p, page)
	}
	return nil
}

// hashFile returns the sha256 and size of what r yields, reading at most
// limit+1 bytes so that a bogus stream cannot run forever.
func hashReader(r io.Reader, limit int64) (sum [32]byte, n int64, err error) {
	h := sha256.New()
	n, err = io.Copy(h, io.LimitReader(r, limit+1))
	copy(sum[:], h.Sum(nil))
	return sum, n, err
}

// loadWasm checks app.wasm and its .br/.gz in dir by streaming them: a
// compressed copy is used only if it decodes to exactly app.wasm.
func loadWasm(dir string, staleLog func(name string)) (*wasmFile, error) {
	rawPath := filepath.Join(dir, "app.wasm")
	f, err := os.Open(rawPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("widgetmount: reading app.wasm: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("widgetmount: reading app.wasm: %w", err)
	}
	sum, n, err := hashReader(f, info.Size())
	if err != nil || n != info.Size() {
		return nil, fmt.Errorf("widgetmount: reading app.wasm: changed while read (%d of %d bytes): %v", n, info.Size(), err)
	}
	w := &wasmFile{dir: dir, rawSize: n, etag: hex.EncodeToString(sum[:]),
		encs: map[string]string{}, stamps: map[string]stamp{"app.wasm": stampOf(info)}}
	// The compressed files are optional (a plain `go build` has none) but
	// must belong to this app.wasm: a stale .br would serve an old build.
	// Their content decides, not their mtimes: `cp -r web` (the README's
	// install step) gives every copy a new mtime in directory order, which
	// would wrongly drop a good .br and send 8 MB raw to every phone.
	for _, enc := range []struct {
		ext, coding string
		decode      func(io.Reader) (io.Reader, error)
	}{
		{".br", "br", func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil }},
		{".gz", "gzip", func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
	} {
		name := "app.wasm" + enc.ext
		ok, st, err := decodesTo(filepath.Join(dir, name), sum, n, enc.decode)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("widgetmount: reading %s: %w", name, err)
		}
		if !ok {
			staleLog(name)
			continue
		}
		w.encs[enc.coding] = name
		w.stamps[name] = st
	}
	return w, nil
}

// decodesTo reports whether the file at path decodes to exactly the bytes
// with the given hash and size. Only read errors are errors; a file that
// does not decode is simply not a copy of app.wasm.
func decodesTo(path string, sum [32]byte, size int64, decode func(io.Reader) (io.Reader, error)) (bool, stamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, stamp{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return false, stamp{}, err
	}
	r, err := decode(bufio.NewReader(f))
	if err != nil {
		return false, stamp{}, nil
	}
	got, n, err := hashReader(r, size)
	if err != nil {
		return false, stamp{}, nil
	}
	return n == size && got == sum, stampOf(info), nil
}

// wasmServer serves app.wasm from disk. If a file changes after Mount (a
// rebuild while the server runs), it is checked again before it is served,
// so the ETag and the encodings always describe the bytes sent.
type wasmServer struct {
	mu  sync.Mutex
	cur *wasmFile
	log *slog.Logger
}

// serve sends app.wasm brotli- or gzip-compressed when the client accepts
// it, raw otherwise.
func (ws *wasmServer) serve(c *fiber.Ctx) error { return ws.serveTry(c, 0) }

// serveTry checks the files again at most twice for one request, so that a
// file being rewritten the whole time cannot keep a request looping.
func (ws *wasmServer) serveTry(c *fiber.Ctx, try int) error {
	if try > 2 {
		return &shared.Error{Code: shared.CodeInternal,
			Message:    "app.wasm keeps changing on this server",
			Suggestion: "Wait for the build to finish, then reload the page."}
	}
	ws.mu.Lock()
	w := ws.cur
	ws.mu.Unlock()
	if w == nil {
		return errWasmMissing()
	}
	if !w.unchanged() {
		if err := ws.reload(w); err != nil {
			return err
		}
		return ws.serveTry(c, try+1)
	}
	name, enc := "app.wasm", ""
	switch accepts := c.Get(fiber.HeaderAcceptEncoding); {
	case w.encs["br"] != "" && acceptsEncoding(accepts, "br"):
		name, enc = w.encs["br"], "br"
	case w.encs["gzip"] != "" && acceptsEncoding(accepts, "gzip"):
		name, enc = w.encs["gzip"], "gzip"
	}
	f, err := os.Open(filepath.Join(w.dir, name))
	var info fs.FileInfo
	if err == nil {
		info, err = f.Stat()
	}
	if err != nil || stampOf(info) != w.stamps[name] {
		if f != nil {
			_ = f.Close()
		}
		if err := ws.reload(w); err != nil {
			return err
		}
		return ws.serveTry(c, try+1)
	}
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	c.Set(fiber.HeaderContentType, "application/wasm")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	etag := `"` + w.etag[:16] + "-" + enc + `"`
	c.Set(fiber.HeaderETag, etag)
	if enc != "" {
		c.Set(fiber.HeaderContentEncoding, enc)
	}
	if match := c.Get(fiber.HeaderIfNoneMatch); match != "" && strings.Contains(match, etag) {
		_ = f.Close()
		return c.SendStatus(fiber.StatusNotModified)
	}
	// fasthttp closes f once the body is sent.
	return c.SendStream(f, int(info.Size()))
}

// unchanged reports whether every checked file is still the one checked:
// a new app.wasm makes its old .br stale even though the .br is unchanged.
func (w *wasmFile) unchanged() bool {
	for name, st := range w.stamps {
		info, err := os.Stat(filepath.Join(w.dir, name))
		if err != nil || stampOf(info) != st {
			return false
		}
	}
	return true
}

// reload checks the files again after one of them changed; the first
// request to notice does the work, the others wait for it.
func (ws *wasmServer) reload(seen *wasmFile) error {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.cur != seen {
		return nil // another request reloaded already
	}
	w, err := loadWasm(seen.dir, func(name string) {
		ws.log.Warn(name+" does not match app.wasm and is not served: run `make wasm` to rebuild it", "webDir", seen.dir)
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		ws.log.Error("app.wasm changed on disk and cannot be read", "webDir", seen.dir, "error", err.Error())
		return &shared.Error{Code: shared.CodeInternal, Message: "app.wasm cannot be read on this server", Err: err}
	}
	ws.log.Warn("app.wasm changed on disk since the server started: restart the server so that installed widgets update",
		"webDir", seen.dir)
	ws.cur = w
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
// regular files are served: no dot files, no directories, no traversal.
func serveStatic(c *fiber.Ctx, dir string) error {
	name := c.Params("*")
	clean := filepath.ToSlash(filepath.Clean("/" + name))[1:]
	if clean == "" || clean != name || strings.HasPrefix(filepath.Base(clean), ".") ||
		strings.HasPrefix(clean, "app.wasm") {
		return c.Next()
	}
	p := filepath.Join(dir, filepath.FromSlash(clean))
	info, err := os.Stat(p)
	if err != nil || !info.Mode().IsRegular() {
		return c.Next()
	}
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.SendFile(p)
}
