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

func TestRunWritesBothEncodings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "app.wasm")
	raw := bytes.Repeat([]byte("\x00asm go wasm "), 10000)
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{p}, &out); err != nil {
		t.Fatal(err)
	}
	br, err := os.ReadFile(p + ".br")
	if err != nil {
		t.Fatal(err)
	}
	gz, err := os.ReadFile(p + ".gz")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(brotli.NewReader(bytes.NewReader(br))); !bytes.Equal(got, raw) {
		t.Error("app.wasm.br does not decode to app.wasm")
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(zr); !bytes.Equal(got, raw) {
		t.Error("app.wasm.gz does not decode to app.wasm")
	}
	if len(br) >= len(raw) || len(gz) >= len(raw) {
		t.Errorf("no compression: raw %d, br %d, gz %d", len(raw), len(br), len(gz))
	}
	if !strings.Contains(out.String(), "brotli") {
		t.Errorf("sizes not printed: %q", out.String())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("files left behind: %v", entries)
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"no argument", nil},
		{"two arguments", []string{"a", "b"}},
		{"missing file", []string{filepath.Join(t.TempDir(), "nope.wasm")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := run(tt.args, io.Discard); err == nil {
				t.Error("run succeeded")
			}
		})
	}
}
