//go:build linux

// Command usage-bench measures the system against baselines started by the
// same tool in the same run and prints each figure next to its baseline, the
// ratio and the budget. It is Linux-only (it reads /proc). It reports; it never fails a build
// because a budget was missed (tests never assert on wall-clock speed).
//
//	usage-bench [-sections store,http,pg,streams,rss,wasm,widget,live,scraper] [flags]
//
// Each section lives in its own file and registers itself in init.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Row is one line of the report.
type Row struct {
	Section  string
	Name     string
	Value    string // the measurement, formatted with its unit
	Baseline string // the baseline measured in the same run; "" if none
	Ratio    string // e.g. "0.83x"; "" if none
	Budget   string // e.g. ">= 0.60x bare"; "" if informational
	Met      *bool  // nil: no budget
	Note     string // anything a reader needs to judge the figure

}

// Env is what every section gets.
type Env struct {
	Root     string        // repository root (where go.mod is)
	BinDir   string        // usage-server, usage-scraper binaries
	WebDir   string        // web/ with app.wasm built by make wasm
	TmpDir   string        // removed at exit
	Duration time.Duration // per HTTP measurement round
	Rounds   int           // HTTP rounds, alternating real and baseline
	Conns    int           // HTTP connections
	Versions int           // stored versions for http and rss
	Runs     int           // browser runs (median)
	StoreOut string        // go test -bench output of ./server/store
	OutDir   string        // where raw measurements go (latency HDR plots); "" for none
	Log      io.Writer     // progress, to stderr
}

// Logf prints progress so that a long run shows where it is.
func (e *Env) Logf(format string, args ...any) {
	fmt.Fprintf(e.Log, "usage-bench: "+format+"\n", args...)
}

type section struct {
	name  string
	order int
	run   func(ctx context.Context, env *Env) ([]Row, error)
}

var (
	sections    []section
	subcommands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{}
)

func register(name string, order int, run func(ctx context.Context, env *Env) ([]Row, error)) {
	sections = append(sections, section{name, order, run})
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "usage-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if sub, ok := subcommands[args[0]]; ok {
			return sub(ctx, args[1:], stdout, stderr)
		}
	}
	slices.SortFunc(sections, func(a, b section) int { return a.order - b.order })
	var names []string
	for _, s := range sections {
		names = append(names, s.name)
	}
	fs := flag.NewFlagSet("usage-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := &Env{Log: stderr}
	which := fs.String("sections", strings.Join(names, ","), "comma-separated sections to run")
	fs.StringVar(&env.BinDir, "bin", envOr("USAGE_BIN_DIR", "bin"), "directory with usage-server and usage-scraper")
	fs.StringVar(&env.WebDir, "web", envOr("USAGE_WEB_DIR", "web"), "web directory with app.wasm (make wasm)")
	fs.DurationVar(&env.Duration, "duration", 3*time.Second, "length of one HTTP measurement round")
	fs.IntVar(&env.Rounds, "rounds", 3, "HTTP rounds per target, alternating real and baseline")
	fs.IntVar(&env.Conns, "conns", 16, "HTTP connections")
	fs.IntVar(&env.Versions, "versions", 10000, "stored versions for the http and rss sections")
	fs.IntVar(&env.Runs, "runs", 7, "browser runs per page or scrape (the median is reported)")
	fs.StringVar(&env.StoreOut, "store-bench", "", "file with `go test -bench` output of ./server/store to summarise")
	fs.StringVar(&env.OutDir, "out", "", "directory for raw measurements (HTTP latency HDR histogram plots); none when empty")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root, err := findRoot()
	if err != nil {
		return err
	}
	env.Root = root
	for _, p := range []*string{&env.BinDir, &env.WebDir} {
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(root, *p)
		}
	}
	tmp, err := os.MkdirTemp("", "usage-bench-")
	if err != nil {
		return fmt.Errorf("bench: temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	env.TmpDir = tmp

	want := map[string]bool{}
	for _, n := range strings.Split(*which, ",") {
		if n = strings.TrimSpace(n); n != "" {
			if !slices.Contains(names, n) {
				return fmt.Errorf("bench: unknown section %q (have %s)", n, strings.Join(names, ", "))
			}
			want[n] = true
		}
	}
	var rows []Row
	var failed []string
	for _, s := range sections {
		if !want[s.name] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		env.Logf("section %s", s.name)
		start := time.Now()
		got, err := s.run(ctx, env)
		for i := range got {
			got[i].Section = s.name
		}
		rows = append(rows, got...)
		if err != nil {
			failed = append(failed, s.name)
			rows = append(rows, Row{Section: s.name, Name: "error", Value: err.Error()})
			env.Logf("section %s failed: %v", s.name, err)
			continue
		}
		env.Logf("section %s done in %s", s.name, time.Since(start).Round(time.Millisecond))
	}
	printReport(stdout, rows)
	if len(failed) > 0 {
		return fmt.Errorf("bench: sections failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

func printReport(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SECTION\tMEASURE\tVALUE\tBASELINE\tRATIO\tBUDGET\tMET\tNOTE")
	met, missed := 0, 0
	for _, r := range rows {
		verdict := ""
		if r.Met != nil {
			if *r.Met {
				verdict = "yes"
				met++
			} else {
				verdict = "NO"
				missed++
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Section, r.Name, dash(r.Value), dash(r.Baseline),
			dash(r.Ratio), dash(r.Budget), dash(verdict), r.Note)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nbudgets met: %d, missed: %d\n", met, missed)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// median is the middle of v (the mean of the two middle values for an even
// count); 0 for none.
func median[T ~int64 | ~float64](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	switch {
	case n == 0:
		return 0
	case n%2 == 1:
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// check returns a pointer for Row.Met.
func check(ok bool) *bool { return &ok }

// ratio formats a/b as "1.23x".
func ratio(a, b float64) string {
	if b == 0 {
		return ""
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("bench: go.mod not found above the working directory; run from the repository")
		}
		dir = parent
	}
}
