package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
)

func TestRunWritesBothEncodingsThatDecodeBack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.wasm")
	// Compressible but not trivial: repeated text with a varying counter.
	var raw bytes.Buffer
	for i := 0; i < 3000; i++ {
		raw.WriteString("func main() { widget.RegisterRoutes(); app.RunWhenOnBrowser() } ")
		raw.WriteByte(byte(i))
	}
	if err := os.WriteFile(path, raw.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := run([]string{path}, &out); err != nil {
		t.Fatalf("run: %v", err)
	}

	decoders := map[string]func(io.Reader) (io.Reader, error){
		".br": func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil },
		".gz": func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
	}
	for ext, dec := range decoders {
		t.Run(ext, func(t *testing.T) {
			b, err := os.ReadFile(path + ext)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) >= raw.Len()/4 {
				t.Errorf("%s is %d bytes for %d raw: not compressed", ext, len(b), raw.Len())
			}
			r, err := dec(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, raw.Bytes()) {
				t.Errorf("%s decodes to %d bytes that differ from the %d raw bytes", ext, len(got), raw.Len())
			}
			info, err := os.Stat(path + ext)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := info.Mode().Perm(), os.FileMode(0o644); got != want {
				t.Errorf("%s mode = %v, want %v (the server must read it)", ext, got, want)
			}
		})
	}

	if s := out.String(); !strings.Contains(s, "app.wasm: raw ") || !strings.Contains(s, "brotli ") {
		t.Errorf("output does not report the sizes: %q", s)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(entries), 3; got != want {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("dir holds %v, want app.wasm, .br and .gz only (no temp files)", names)
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no argument", nil, "usage: precompress FILE"},
		{"two arguments", []string{"a", "b"}, "usage: precompress FILE"},
		{"missing file", []string{filepath.Join(dir, "nope.wasm")}, "precompress: reading"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args, io.Discard)
			if err == nil {
				t.Fatal("run returned nil")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "nope.wasm.br")); err == nil {
		t.Error("a .br was written for a missing input")
	}
}

// An earlier build's copies are replaced whole, with the mode the server
// needs.
func TestRunReplacesEarlierCopies(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.wasm")
	raw := bytes.Repeat([]byte("new build "), 500)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".br", ".gz"} {
		if err := os.WriteFile(path+ext, bytes.Repeat([]byte("old"), 10000), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := run([]string{path}, io.Discard); err != nil {
		t.Fatal(err)
	}
	br, err := os.ReadFile(path + ".br")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(brotli.NewReader(bytes.NewReader(br)))
	if err != nil || !bytes.Equal(got, raw) {
		t.Errorf(".br does not decode to the new build (err %v)", err)
	}
	info, err := os.Stat(path + ".gz")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := info.Mode().Perm(), os.FileMode(0o644); got != want {
		t.Errorf(".gz mode = %v, want %v", got, want)
	}
}
