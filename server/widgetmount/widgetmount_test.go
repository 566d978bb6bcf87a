package widgetmount

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/gofiber/fiber/v2"

	"github.com/claude-usage/widget/shared"
)

func newApp(t *testing.T, dir string) *fiber.App {
	t.Helper()
	f := fiber.New(fiber.Config{ErrorHandler: func(c *fiber.Ctx, err error) error {
		var se *shared.Error
		if errors.As(err, &se) {
			return c.Status(se.Code.Status()).JSON(se.Body("test", time.Now()))
		}
		var fe *fiber.Error
		if errors.As(err, &fe) {
			return c.Status(fe.Code).SendString(fe.Message)
		}
		return c.Status(500).SendString(err.Error())
	}})
	w, err := New(Options{WebDir: dir, Refresh: 2 * time.Second, RetryDelay: 300 * time.Millisecond,
		BreakerThreshold: 3, BreakerCooldown: 5 * time.Second, Version: "v1",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	w.Mount(f)
	return f
}

func do(t *testing.T, f *fiber.App, path, acceptEncoding string) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	resp, err := f.Test(req, 5000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

func writeWeb(t *testing.T) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	raw := bytes.Repeat([]byte("\x00asm wasm body "), 4000)
	var br, gz bytes.Buffer
	bw := brotli.NewWriter(&br)
	bw.Write(raw)
	bw.Close()
	gw := gzip.NewWriter(&gz)
	gw.Write(raw)
	gw.Close()
	for name, b := range map[string][]byte{"app.wasm": raw, "app.wasm.br": br.Bytes(), "app.wasm.gz": gz.Bytes(),
		"icon-192.png": []byte("\x89PNG icon"), "widget.css": []byte("body{}"), ".secret": []byte("no")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, raw
}

func TestWasmByAcceptEncoding(t *testing.T) {
	t.Parallel()
	dir, raw := writeWeb(t)
	f := newApp(t, dir)
	tests := []struct {
		name, accept, wantEncoding string
	}{
		{"brotli preferred", "gzip, deflate, br", "br"},
		{"gzip fallback", "gzip, deflate", "gzip"},
		{"brotli refused by q=0", "br;q=0, gzip", "gzip"},
		{"identity", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, f, "/web/app.wasm", tt.accept)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d", resp.StatusCode)
			}
			if got, want := resp.Header.Get("Content-Encoding"), tt.wantEncoding; got != want {
				t.Errorf("Content-Encoding = %q, want %q", got, want)
			}
			if got, want := resp.Header.Get("Content-Type"), "application/wasm"; got != want {
				t.Errorf("Content-Type = %q, want %q", got, want)
			}
			if got, want := resp.Header.Get("Vary"), "Accept-Encoding"; got != want {
				t.Errorf("Vary = %q, want %q", got, want)
			}
			var r io.Reader = bytes.NewReader(body)
			switch tt.wantEncoding {
			case "br":
				r = brotli.NewReader(r)
			case "gzip":
				gr, err := gzip.NewReader(r)
				if err != nil {
					t.Fatal(err)
				}
				r = gr
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, raw) {
				t.Errorf("decoded body differs from app.wasm (err %v, %d bytes)", err, len(got))
			}
		})
	}
}

func TestPageAndPWAFiles(t *testing.T) {
	t.Parallel()
	dir, _ := writeWeb(t)
	f := newApp(t, dir)
	for _, p := range []string{"/", "/app.js", "/wasm_exec.js", "/app-worker.js", "/manifest.webmanifest", "/app.css", "/web/icon-192.png", "/web/widget.css", WorkerPath} {
		resp, _ := do(t, f, p, "")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", p, resp.StatusCode)
		}
	}
	_, js := do(t, f, "/app.js", "")
	// The worker comes from the binary, whatever the web dir holds.
	if _, w := do(t, f, WorkerPath, ""); !strings.Contains(string(w), "WebAssembly.compileStreaming(") {
		t.Errorf("GET %s = %q, want the compile worker", WorkerPath, w)
	}
	// app.wasm compiles in the worker, not through go-app's stream on
	// the page.
	if want := `goappInstantiateOffThread("/web/app.wasm", go.importObject, instantiateStreaming)`; !strings.Contains(string(js), want) {
		t.Errorf("app.js lacks %s", want)
	}
	if bad := "fetchWithProgress(\""; strings.Contains(string(js), bad) {
		t.Errorf("app.js still calls %s…)", bad)
	}
	for _, p := range []string{"/web/.secret", "/web/missing.png", "/web/../go.mod", "/robots.txt", "/other"} {
		resp, _ := do(t, f, p, "")
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestMissingWasmIsAClear404(t *testing.T) {
	t.Parallel()
	f := newApp(t, t.TempDir())
	resp, body := do(t, f, "/web/app.wasm", "br")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status = %d, want 404", resp.StatusCode)
	}
	if !strings.Contains(string(body), "make wasm") {
		t.Errorf("body %s does not say how to build app.wasm", body)
	}
	if resp, _ := do(t, f, "/", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("page without app.wasm = %d, want 200", resp.StatusCode)
	}
}

// TestStaleCompressedCopiesAreNotServed: a .br/.gz older than app.wasm
// (by a second or more) is from an earlier build; what the client decodes
// is always the app.wasm on disk, whatever the mtimes of the copies.
func TestStaleCompressedCopiesAreNotServed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		prepare      func(t *testing.T, dir string)
		accept       string
		wantEncoding string
	}{
		{"copies an hour older, same content (after cp)", func(t *testing.T, dir string) {
			age(t, dir, time.Hour, "app.wasm.br", "app.wasm.gz")
		}, "br, gzip", "br"},
		{"brotli from an earlier build", func(t *testing.T, dir string) {
			br, _ := compress(t, []byte("an older build of app.wasm"))
			writeFile(t, dir, "app.wasm.br", br)
			age(t, dir, time.Hour, "app.wasm.br")
		}, "br, gzip", "br"},
		{"gzip from an earlier build", func(t *testing.T, dir string) {
			_, gz := compress(t, []byte("an older build of app.wasm"))
			writeFile(t, dir, "app.wasm.gz", gz)
			age(t, dir, time.Hour, "app.wasm.gz")
		}, "gzip", "gzip"},
		{"no compressed copies at all", func(t *testing.T, dir string) {
			for _, n := range []string{"app.wasm.br", "app.wasm.gz"} {
				if err := os.Remove(filepath.Join(dir, n)); err != nil {
					t.Fatal(err)
				}
			}
		}, "br, gzip", "br"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, raw := writeWeb(t)
			tt.prepare(t, dir)
			f := newApp(t, dir)
			resp, body := do(t, f, "/web/app.wasm", tt.accept)
			if got, want := resp.Header.Get("Content-Encoding"), tt.wantEncoding; got != want {
				t.Fatalf("Content-Encoding = %q, want %q", got, want)
			}
			if got := decode(t, tt.wantEncoding, body); !bytes.Equal(got, raw) {
				t.Errorf("the browser would not get this app.wasm (%d bytes, want %d)", len(got), len(raw))
			}
		})
	}
}

// age sets the mtimes of names in dir to d before app.wasm's.
func age(t *testing.T, dir string, d time.Duration, names ...string) {
	t.Helper()
	info, err := os.Stat(filepath.Join(dir, "app.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	old := info.ModTime().Add(-d)
	for _, n := range names {
		if err := os.Chtimes(filepath.Join(dir, n), old, old); err != nil {
			t.Fatal(err)
		}
	}
}

func decode(t *testing.T, enc string, body []byte) []byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(body)
	switch enc {
	case "br":
		r = brotli.NewReader(r)
	case "gzip":
		gr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = gr
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func compress(t *testing.T, raw []byte) (br, gz []byte) {
	t.Helper()
	var b, g bytes.Buffer
	bw := brotli.NewWriter(&b)
	if _, err := bw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := bw.Close(); err != nil {
		t.Fatal(err)
	}
	gw := gzip.NewWriter(&g)
	if _, err := gw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), g.Bytes()
}

func writeFile(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// app.wasm is served from disk; a rebuild while the server runs is what
// the next request gets, compressed or not, and never an old copy.
func TestWasmRebuiltWhileRunning(t *testing.T) {
	t.Parallel()
	dir, raw := writeWeb(t)
	f := newApp(t, dir)
	resp, body := do(t, f, "/web/app.wasm", "br")
	if got := resp.Header.Get("Content-Encoding"); got != "br" {
		t.Fatalf("Content-Encoding = %q, want br", got)
	}
	if got := decode(t, "br", body); !bytes.Equal(got, raw) {
		t.Fatal("first answer is not app.wasm")
	}

	// A plain go build: app.wasm new, .br and .gz from before.
	rebuilt := append(bytes.Clone(raw), []byte(" and a new feature")...)
	writeFile(t, dir, "app.wasm", rebuilt)
	age(t, dir, 2*time.Second, "app.wasm.br", "app.wasm.gz")
	for _, ae := range []string{"br, gzip", "gzip", ""} {
		resp, body := do(t, f, "/web/app.wasm", ae)
		enc := resp.Header.Get("Content-Encoding")
		if got := decode(t, enc, body); !bytes.Equal(got, rebuilt) {
			t.Errorf("Accept-Encoding %q: got %d bytes (%q), want the rebuilt app.wasm (%d bytes)", ae, len(got), enc, len(rebuilt))
		}
	}

	// make wasm: precompress writes the copies after app.wasm.
	br, gz := compress(t, rebuilt)
	writeFile(t, dir, "app.wasm.br", br)
	writeFile(t, dir, "app.wasm.gz", gz)
	resp, body = do(t, f, "/web/app.wasm", "br")
	if got := resp.Header.Get("Content-Encoding"); got != "br" {
		t.Fatalf("Content-Encoding = %q after make wasm, want br", got)
	}
	if got := decode(t, "br", body); !bytes.Equal(got, rebuilt) {
		t.Error("the brotli copy does not decode to the rebuilt app.wasm")
	}

	if err := os.Remove(filepath.Join(dir, "app.wasm")); err != nil {
		t.Fatal(err)
	}
	resp, body = do(t, f, "/web/app.wasm", "")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "make wasm") {
		t.Errorf("app.wasm removed after Mount: status %d %s, want 404 saying make wasm", resp.StatusCode, body)
	}
}

func TestScriptHashes(t *testing.T) {
	t.Parallel()
	// echo -n 'alert(1)' | openssl dgst -sha256 -binary | base64
	const alert = "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"
	tests := []struct {
		name, html string
		want       []string
	}{
		{"none", `<head><script src="/app.js" defer></script></head>`, nil},
		{"inline", `<script>alert(1)</script>`, []string{alert}},
		{"inline with attributes", `<script type="module" data-src="x">alert(1)</script>`, []string{alert}},
		{"upper case tags", `<SCRIPT>alert(1)</SCRIPT >`, []string{alert}},
		{"src is not inline", `<script defer src="/wasm_exec.js"></script><script>alert(1)</script>`, []string{alert}},
		{"empty inline", `<script></script>`, []string{"'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ScriptHashes(tt.html); !slices.Equal(got, tt.want) {
				t.Errorf("ScriptHashes = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCompileWasmOffThread(t *testing.T) {
	goapp := `const wasm = await instantiateStreaming(
      fetchWithProgress("/web/app.wasm", showProgress),
      go.importObject
    );`
	got, ok := CompileWasmOffThread([]byte(goapp))
	if !ok || !strings.HasPrefix(string(got), `const wasm = await goappInstantiateOffThread("/web/app.wasm", go.importObject, instantiateStreaming);`) ||
		!strings.Contains(string(got), "function goappInstantiateOffThread(") {
		t.Errorf("go-app's loader rewritten to %q, %v", got, ok)
	}
	changed := `instantiateStreaming(fetchWasm("/web/app.wasm"), go.importObject)`
	if got, ok := CompileWasmOffThread([]byte(changed)); ok || string(got) != changed {
		t.Errorf("an unknown loader became %q, %v; want it unchanged, false", got, ok)
	}
}
