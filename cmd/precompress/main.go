// Command precompress writes FILE.br (brotli, best) and FILE.gz (gzip, best)
// next to FILE, so the server sends app.wasm compressed without spending CPU
// per request. It prints the three sizes.
package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/andybalholm/brotli"

	"github.com/claude-usage/widget/internal/atomicfile"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "precompress:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: precompress FILE")
	}
	path := args[0]
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("precompress: reading %s: %w", path, err)
	}
	br, err := Brotli(raw)
	if err != nil {
		return err
	}
	gz, err := Gzip(raw)
	if err != nil {
		return err
	}
	// Atomic, so that a server reading a copy never sees half a file.
	for _, out := range []struct {
		name string
		b    []byte
	}{{path + ".br", br}, {path + ".gz", gz}} {
		if err := atomicfile.Write(out.name, out.b, 0o644); err != nil {
			return fmt.Errorf("precompress: writing %s: %w", out.name, err)
		}
	}
	fmt.Fprintf(stdout, "%s: raw %d bytes, gzip %d bytes, brotli %d bytes\n", filepath.Base(path), len(raw), len(gz), len(br))
	return nil
}

// Brotli compresses b at the best quality.
func Brotli(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	w := brotli.NewWriterLevel(&buf, brotli.BestCompression)
	if _, err := w.Write(b); err != nil {
		return nil, fmt.Errorf("precompress: brotli: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("precompress: brotli: %w", err)
	}
	return buf.Bytes(), nil
}

// Gzip compresses b at the best level.
func Gzip(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("precompress: gzip: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return nil, fmt.Errorf("precompress: gzip: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("precompress: gzip: %w", err)
	}
	return buf.Bytes(), nil
}
