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
	"strconv"
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
	err := Mount(f, Options{WebDir: dir, Refresh: 2 * time.Second, RetryDelay: 300 * time.Millisecond,
		BreakerThreshold: 3, BreakerCooldown: 5 * time.Second, Version: "v1",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
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
	dir, raw := writeWeb(t)
	f := newApp(t, dir)
	for _, p := range []string{"/", "/app.js", "/wasm_exec.js", "/app-worker.js", "/manifest.webmanifest", "/app.css", "/web/icon-192.png", "/web/widget.css"} {
		resp, _ := do(t, f, p, "")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", p, resp.StatusCode)
		}
	}
	_, js := do(t, f, "/app.js", "")
	if want := `goappWasmContentLength = "` + strconv.Itoa(len(raw)) + `"`; !strings.Contains(string(js), want) {
		t.Errorf("app.js lacks %s (the raw size: the loader counts decompressed bytes)", want)
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

// TestCompressedFilesMustMatchAppWasm: content decides whether a .br/.gz
// belongs to app.wasm, never mtimes (a `cp -r web` reorders those).
func TestCompressedFilesMustMatchAppWasm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		prepare      func(t *testing.T, dir string)
		wantEncoding string
	}{
		{"older mtimes but same content (after cp)", func(t *testing.T, dir string) {
			old := time.Now().Add(-time.Hour)
			for _, n := range []string{"app.wasm.br", "app.wasm.gz"} {
				if err := os.Chtimes(filepath.Join(dir, n), old, old); err != nil {
					t.Fatal(err)
				}
			}
		}, "br"},
		{"both from another build", func(t *testing.T, dir string) {
			br, gz := compress(t, []byte("an older build of app.wasm"))
			writeFile(t, dir, "app.wasm.br", br)
			writeFile(t, dir, "app.wasm.gz", gz)
		}, ""},
		{"corrupt brotli falls back to gzip", func(t *testing.T, dir string) {
			writeFile(t, dir, "app.wasm.br", []byte("not brotli at all"))
		}, "gzip"},
		{"truncated gzip, no brotli", func(t *testing.T, dir string) {
			b, err := os.ReadFile(filepath.Join(dir, "app.wasm.gz"))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, "app.wasm.gz", b[:len(b)/2])
			if err := os.Remove(filepath.Join(dir, "app.wasm.br")); err != nil {
				t.Fatal(err)
			}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, raw := writeWeb(t)
			tt.prepare(t, dir)
			f := newApp(t, dir)
			resp, body := do(t, f, "/web/app.wasm", "br, gzip")
			if got, want := resp.Header.Get("Content-Encoding"), tt.wantEncoding; got != want {
				t.Fatalf("Content-Encoding = %q, want %q", got, want)
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
				t.Errorf("the browser would not get this app.wasm (err %v, %d bytes)", err, len(got))
			}
		})
	}
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

// app.wasm is served from disk; a rebuild while the server runs is checked
// again before it is served: the new bytes, a new ETag, and no stale .br.
func TestWasmChangedOnDiskIsCheckedAgain(t *testing.T) {
	t.Parallel()
	dir, raw := writeWeb(t)
	f := newApp(t, dir)
	resp, _ := do(t, f, "/web/app.wasm", "br")
	oldTag := resp.Header.Get("ETag")
	if got := resp.Header.Get("Content-Encoding"); got != "br" {
		t.Fatalf("Content-Encoding = %q, want br", got)
	}

	rebuilt := append(bytes.Clone(raw), []byte(" and a new feature")...)
	writeFile(t, dir, "app.wasm", rebuilt) // .br and .gz are now stale
	for _, ae := range []string{"br, gzip", ""} {
		resp, body := do(t, f, "/web/app.wasm", ae)
		if got := resp.Header.Get("Content-Encoding"); got != "" {
			t.Errorf("Accept-Encoding %q: a stale %q copy was served after the rebuild", ae, got)
		}
		if !bytes.Equal(body, rebuilt) {
			t.Errorf("Accept-Encoding %q: got %d bytes, want the rebuilt app.wasm (%d bytes)", ae, len(body), len(rebuilt))
		}
		if tag := resp.Header.Get("ETag"); tag == oldTag || tag == "" {
			t.Errorf("ETag %q after the rebuild, want a new one (was %q)", tag, oldTag)
		}
	}

	br, gz := compress(t, rebuilt)
	writeFile(t, dir, "app.wasm.br", br)
	writeFile(t, dir, "app.wasm.gz", gz)
	// The next request to a changed .br notices; app.wasm itself did not
	// change, so ask for the copy that did.
	if err := os.Remove(filepath.Join(dir, "app.wasm")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "app.wasm", rebuilt) // new mtime: everything is checked again
	resp, body := do(t, f, "/web/app.wasm", "br")
	if got := resp.Header.Get("Content-Encoding"); got != "br" {
		t.Fatalf("Content-Encoding = %q after the .br was rebuilt too, want br", got)
	}
	got, err := io.ReadAll(brotli.NewReader(bytes.NewReader(body)))
	if err != nil || !bytes.Equal(got, rebuilt) {
		t.Errorf("the brotli copy does not decode to the rebuilt app.wasm (err %v)", err)
	}

	if err := os.Remove(filepath.Join(dir, "app.wasm")); err != nil {
		t.Fatal(err)
	}
	resp, _ = do(t, f, "/web/app.wasm", "br")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("app.wasm removed after Mount: status %d, want 404", resp.StatusCode)
	}
}
