//go:build linux

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
// 10 000 versions next to the same at 100, and Open (the index rebuilt
// from every version file) at 2 000 versions, a store at the default
// retention, and at 10 000.

const nearestBudget = 2.0 // Nearest@10000 within 2x of Nearest@100

// openBudgets are the most Open may take, by versions in the store.
var openBudgets = []struct {
	versions int
	budget   time.Duration
}{
	{2000, 60 * time.Millisecond},
	{10000, 300 * time.Millisecond},
}

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
	return storeRows(ns)
}

// storeRows makes the section's rows from ns/op by benchmark name; a
// benchmark missing from the output is an error, not a row left out.
func storeRows(ns map[string]float64) ([]Row, error) {
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
	var prev float64
	for i, ob := range openBudgets {
		v, err := get(fmt.Sprintf("Open/versions=%d", ob.versions))
		if err != nil {
			return nil, err
		}
		r := Row{Name: fmt.Sprintf("Open (index from the files), %s versions", thousands(ob.versions)), Value: dur(v),
			Budget: "<= " + ob.budget.String(), Met: check(time.Duration(v) <= ob.budget),
			Note: "every version file read and parsed"}
		if i > 0 {
			// The growth shows whether Open stays linear in the versions.
			r.Baseline, r.Ratio = dur(prev)+" @"+thousands(openBudgets[i-1].versions), ratio(v, prev)
			r.Note += fmt.Sprintf("; %.0fx the versions", float64(ob.versions)/float64(openBudgets[i-1].versions))
		} else {
			r.Note += "; the default retention's size (a scrape every 5 min, 7 days)"
		}
		rows = append(rows, r)
		prev = v
	}
	return rows, nil
}

// thousands formats n with a space between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + " " + s[i:]
	}
	return s
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
