//go:build linux

package main

import (
	"maps"
	"strings"
	"testing"
)

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkSave-2                     	     680	   1712345 ns/op	    2345 B/op	      30 allocs/op
BenchmarkReads/Nearest/100-2        	 5000000	       231.5 ns/op	     384 B/op	       3 allocs/op
BenchmarkReads/Nearest/100-2        	 5000000	       220.0 ns/op
BenchmarkOpen/versions=2000-2       	      30	  21000000 ns/op
BenchmarkOpen/versions=10000        	       5	 110000000 ns/op
BenchmarkNoProcs 100 5 ns/op
--- BENCH: BenchmarkX
PASS
`
	got, err := parseBench(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"Save": 1712345, "Reads/Nearest/100": 220, "Open/versions=2000": 21e6,
		"Open/versions=10000": 110e6, "NoProcs": 5}
	if !maps.Equal(got, want) {
		t.Errorf("parsed %v, want %v", got, want)
	}
}

// storeBench is a complete store output in ns/op, reads as fast at 10 000
// as at 100.
func storeBench(open2000, open10000 float64) map[string]float64 {
	ns := map[string]float64{"Save": 1.5e6, "Open/versions=2000": open2000, "Open/versions=10000": open10000}
	for _, op := range []string{"Latest", "Nearest", "ByNumber"} {
		for _, n := range []string{"100", "1000", "10000"} {
			ns["Reads/"+op+"/"+n] = 500
		}
	}
	return ns
}

func TestStoreRowsOpenBudgets(t *testing.T) {
	for _, c := range []struct {
		name              string
		open2000, open10k float64 // ns
		met2000, met10k   bool
	}{
		{"both met", 40e6, 210e6, true, true},
		{"at the budgets", 60e6, 300e6, true, true},
		{"2 000 over", 61e6, 250e6, false, true},
		{"10 000 over", 50e6, 301e6, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows, err := storeRows(storeBench(c.open2000, c.open10k))
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string]Row{}
			for _, r := range rows {
				byName[r.Name] = r
			}
			small, ok := byName["Open (index from the files), 2 000 versions"]
			big, ok2 := byName["Open (index from the files), 10 000 versions"]
			if !ok || !ok2 {
				t.Fatalf("rows %+v lack the two Open rows", rows)
			}
			if got, want := *small.Met, c.met2000; got != want {
				t.Errorf("2 000 met = %v, want %v (%+v)", got, want, small)
			}
			if got, want := *big.Met, c.met10k; got != want {
				t.Errorf("10 000 met = %v, want %v (%+v)", got, want, big)
			}
			if got, want := small.Budget, "<= 60ms"; got != want {
				t.Errorf("2 000 budget %q, want %q", got, want)
			}
			if got, want := big.Budget, "<= 300ms"; got != want {
				t.Errorf("10 000 budget %q, want %q", got, want)
			}
		})
	}
}

func TestStoreRowsNeedEveryBenchmark(t *testing.T) {
	for _, missing := range []string{"Save", "Reads/Nearest/10000", "Open/versions=2000", "Open/versions=10000"} {
		t.Run(missing, func(t *testing.T) {
			ns := storeBench(40e6, 200e6)
			delete(ns, missing)
			if _, err := storeRows(ns); err == nil || !strings.Contains(err.Error(), missing) {
				t.Errorf("storeRows without %s: %v, want an error naming it", missing, err)
			}
		})
	}
}

func TestThousands(t *testing.T) {
	for _, c := range []struct {
		n    int
		want string
	}{{5, "5"}, {999, "999"}, {2000, "2 000"}, {10000, "10 000"}, {1234567, "1 234 567"}} {
		if got := thousands(c.n); got != c.want {
			t.Errorf("thousands(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
