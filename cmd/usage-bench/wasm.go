//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// wasmBudgetBrotli is the 1.6 MB, the same number as
// e2e/widget's TestWasmBudget.
const wasmBudgetBrotli = 1_600_000

var wasmFiles = []struct{ name, file string }{
	{"app.wasm raw", "app.wasm"},
	{"app.wasm gzip", "app.wasm.gz"},
	{"app.wasm brotli", "app.wasm.br"},
}

func init() {
	register("wasm", 40, runWasm)
}

// runWasm reports the sizes make wasm produced, next to the bare go-app
// program built and compressed the same way.
func runWasm(ctx context.Context, env *Env) ([]Row, error) {
	sizes, err := wasmSizes(env.WebDir)
	if err != nil {
		return nil, err
	}
	bare, bareErr := bareWeb(ctx, env)
	var bareSizes []int64
	if bareErr == nil {
		if bareSizes, bareErr = wasmSizes(bare); bareErr != nil {
			bareErr = fmt.Errorf("bench: bare go-app: %w", bareErr)
		}
	}
	var rows []Row
	for i, f := range wasmFiles {
		r := Row{Name: f.name, Value: megabytes(sizes[i])}
		if bareErr == nil {
			r.Baseline = megabytes(bareSizes[i])
			r.Ratio = ratio(float64(sizes[i]), float64(bareSizes[i]))
		}
		if f.file == "app.wasm.br" {
			r.Budget = fmt.Sprintf("<= %.1f MB", float64(wasmBudgetBrotli)/1e6)
			r.Met = check(sizes[i] <= wasmBudgetBrotli)
		}
		if i == 0 {
			r.Note = "baseline: bench/bareapp (go-app v10, one static meter), built and precompressed like make wasm"
		}
		rows = append(rows, r)
	}
	// The widget's own sizes and verdict stand without the baseline.
	if bareErr != nil {
		rows = append(rows, Row{Name: "baseline", Value: "unavailable", Note: bareErr.Error()})
	}
	return rows, nil
}

func wasmSizes(dir string) ([]int64, error) {
	var sizes []int64
	for _, f := range wasmFiles {
		info, err := os.Stat(filepath.Join(dir, f.file))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("bench: %s is missing in %s: run `make wasm`", f.file, dir)
		}
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		sizes = append(sizes, info.Size())
	}
	return sizes, nil
}

// megabytes formats bytes in decimal megabytes, the unit of the budget.
func megabytes(n int64) string {
	return fmt.Sprintf("%.3f MB", float64(n)/1e6)
}

var (
	bareMu    sync.Mutex
	bareBuilt = map[string]string{} // TmpDir → web dir, built once per run
)

// bareWeb builds bench/bareapp into a copy of env.WebDir (icons, CSS) with
// `make wasm`'s command and precompresses it with cmd/precompress, so that it
// differs from the widget's web dir only in app.wasm(.br/.gz).
func bareWeb(ctx context.Context, env *Env) (string, error) {
	bareMu.Lock()
	defer bareMu.Unlock()
	if dir, ok := bareBuilt[env.TmpDir]; ok {
		return dir, nil
	}
	dir := filepath.Join(env.TmpDir, "bare-web")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	entries, err := os.ReadDir(env.WebDir)
	if err != nil {
		return "", fmt.Errorf("bench: web dir: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), "app.wasm") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(env.WebDir, e.Name()))
		if err != nil {
			return "", fmt.Errorf("bench: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			return "", fmt.Errorf("bench: %w", err)
		}
	}
	wasm := filepath.Join(dir, "app.wasm")
	env.Logf("building bench/bareapp into %s", wasm)
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-gcflags=all=-l", "-ldflags=-s -w", "-o", wasm, "./bench/bareapp")
	build.Dir = env.Root
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("bench: building bench/bareapp: %w\n%s", err, out)
	}
	pre := exec.CommandContext(ctx, "go", "run", "./cmd/precompress", wasm)
	pre.Dir = env.Root
	if out, err := pre.CombinedOutput(); err != nil {
		return "", fmt.Errorf("bench: precompressing the bare app.wasm: %w\n%s", err, out)
	}
	bareBuilt[env.TmpDir] = dir
	return dir, nil
}
