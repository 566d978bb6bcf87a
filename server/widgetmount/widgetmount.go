//go:build !wasm

// Package widgetmount serves the go-app widget from the fiber server: the
// page routes through go-app's handler and app.wasm precompressed. The API
// routes stay native fiber handlers; this package only adds page routes.
package widgetmount

import (
	"bytes"
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

// wasmFile is app.wasm in its three encodings, read once at Mount.
type wasmFile struct {
	raw, br, gz []byte
	etag        string
}

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
		rawSize = int64(len(wasm.raw))
	}
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

	f.Get("/web/app.wasm", func(c *fiber.Ctx) error { return serveWasm(c, wasm) })
	f.Get("/web/*", func(c *fiber.Ctx) error { return serveStatic(c, dir) })
	page := adaptor.HTTPHandler(h)
	for _, p := range PagePaths {
		f.Get(p, page)
	}
	return nil
}

// decodesTo reports whether compressed decodes to exactly raw. It reads at
// most one byte past len(raw), so a bogus file cannot blow up memory.
func decodesTo(compressed, raw []byte, decode func(io.Reader) (io.Reader, error)) bool {
	r, err := decode(bytes.NewReader(compressed))
	if err != nil {
		return false
	}
	// One byte more than raw: a longer stream ends in a full buffer.
	buf := make([]byte, len(raw)+1)
	n, err := io.ReadFull(r, buf)
	return errors.Is(err, io.ErrUnexpectedEOF) && n == len(raw) && bytes.Equal(buf[:n], raw)
}

func loadWasm(dir string, staleLog func(name string)) (*wasmFile, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "app.wasm"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("widgetmount: reading app.wasm: %w", err)
	}
	w := &wasmFile{raw: raw}
	sum := sha256.Sum256(raw)
	w.etag = hex.EncodeToString(sum[:])
	// The compressed files are optional (a plain `go build` has none) but
	// must belong to this app.wasm: a stale .br would serve an old build.
	// Their content decides, not their mtimes: `cp -r web` (the README's
	// install step) gives every copy a new mtime in directory order, which
	// would wrongly drop a good .br and send 8 MB raw to every phone.
	for _, enc := range []struct {
		ext    string
		dst    *[]byte
		decode func(io.Reader) (io.Reader, error)
	}{
		{".br", &w.br, func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil }},
		{".gz", &w.gz, func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
	} {
		p := filepath.Join(dir, "app.wasm"+enc.ext)
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("widgetmount: reading %s: %w", filepath.Base(p), err)
		}
		if !decodesTo(b, raw, enc.decode) {
			staleLog(filepath.Base(p))
			continue
		}
		*enc.dst = b
	}
	return w, nil
}

// serveWasm sends app.wasm brotli- or gzip-compressed when the client
// accepts it, raw otherwise.
func serveWasm(c *fiber.Ctx, w *wasmFile) error {
	if w == nil {
		return &shared.Error{Code: shared.CodeNotFound,
			Message:    "app.wasm is not built on this server",
			Suggestion: "Run `make wasm` (or `make build`) and restart the server with --web-dir pointing at web/."}
	}
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	c.Set(fiber.HeaderContentType, "application/wasm")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	body, enc := w.raw, ""
	switch accepts := c.Get(fiber.HeaderAcceptEncoding); {
	case w.br != nil && acceptsEncoding(accepts, "br"):
		body, enc = w.br, "br"
	case w.gz != nil && acceptsEncoding(accepts, "gzip"):
		body, enc = w.gz, "gzip"
	}
	etag := `"` + w.etag[:16] + "-" + enc + `"`
	c.Set(fiber.HeaderETag, etag)
	if enc != "" {
		c.Set(fiber.HeaderContentEncoding, enc)
	}
	if match := c.Get(fiber.HeaderIfNoneMatch); match != "" && strings.Contains(match, etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	return c.Send(body)
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
