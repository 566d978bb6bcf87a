package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The store section summarises the Go benchmarks of ./server/store (run by
// make bench, or here when -store-bench is not given): each lookup at
// 10 000 versions next to the same at 100, and the index rebuild at start.

const (
	nearestBudget = 2.0                   // Nearest@10000 within 2x of Nearest@100
	openBudget    = 50 * time.Millisecond // index rebuild at 10 000 versions
)

func init() {
	register("store", 10, runStore)
}

// benchLine matches "BenchmarkReads/Nearest/100-2  1000  123.4 ns/op ...".
var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+([0-9.]+) ns/op`)

// parseBench returns ns/op by benchmark name (without the GOMAXPROCS
// suffix); a name seen twice (-count > 1) keeps the smaller value.
func parseBench(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return nil, fmt.Errorf("bench: %q: %w", sc.Text(), err)
		}
		if old, ok := out[m[1]]; !ok || v < old {
			out[m[1]] = v
		}
	}
	return out, sc.Err()
}

func runStore(ctx context.Context, env *Env) ([]Row, error) {
	var data []byte
	if env.StoreOut != "" {
		b, err := os.ReadFile(env.StoreOut)
		if err != nil {
			return nil, fmt.Errorf("bench: reading the store benchmarks: %w", err)
		}
		data = b
	} else {
		env.Logf("store: running go test -bench ./server/store (pass -store-bench to reuse an output)")
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1", "./server/store/")
		cmd.Dir = env.Root
		cmd.Stderr = env.Log
		b, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("bench: go test -bench ./server/store: %w", err)
		}
		data = b
	}
	ns, err := parseBench(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	get := func(name string) (float64, error) {
		v, ok := ns[name]
		if !ok {
			return 0, fmt.Errorf("bench: benchmark %s missing from the store output", name)
		}
		return v, nil
	}
	var rows []Row
	if v, err := get("Save"); err == nil {
		rows = append(rows, Row{Name: "save (tmp, fsync, rename, fsync dir)", Value: dur(v), Note: "one version; two fsyncs on this disk"})
	} else {
		return nil, err
	}
	for _, op := range []string{"Latest", "Nearest", "ByNumber"} {
		small, err := get("Reads/" + op + "/100")
		if err != nil {
			return nil, err
		}
		mid, err := get("Reads/" + op + "/1000")
		if err != nil {
			return nil, err
		}
		big, err := get("Reads/" + op + "/10000")
		if err != nil {
			return nil, err
		}
		r := Row{Name: strings.ToLower(op) + " lookup at 10 000 vs 100 versions", Value: dur(big), Baseline: dur(small),
			Ratio: ratio(big, small), Note: "at 1 000: " + dur(mid)}
		if op == "Nearest" {
			r.Budget = fmt.Sprintf("<= %.0fx @100", nearestBudget)
			r.Met = check(big/small <= nearestBudget)
		}
		rows = append(rows, r)
	}
	cp, err := get("Open10000/checkpoint")
	if err != nil {
		return nil, err
	}
	files, err := get("Open10000/files")
	if err != nil {
		return nil, err
	}
	rows = append(rows,
		Row{Name: "index rebuild at start, 10 000 versions", Value: dur(cp), Baseline: dur(files), Ratio: ratio(cp, files),
			Budget: "< " + openBudget.String(), Met: check(time.Duration(cp) < openBudget),
			Note: "Open after a clean stop (checkpoint file); baseline: Open reading every version file (no checkpoint)"},
	)
	return rows, nil
}

// dur formats nanoseconds with a unit that suits them.
func dur(ns float64) string {
	switch {
	case ns < 1e3:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1e6:
		return fmt.Sprintf("%.2f µs", ns/1e3)
	default:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	}
}
