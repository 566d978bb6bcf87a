package main

import (
	"strings"
	"testing"
)

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkSave-2                     	     680	   1712345 ns/op	    2345 B/op	      30 allocs/op
BenchmarkReads/Nearest/100-2        	 5000000	       231.5 ns/op	     384 B/op	       3 allocs/op
BenchmarkReads/Nearest/100-2        	 5000000	       220.0 ns/op
BenchmarkOpen10000/checkpoint-2     	      10	  21000000 ns/op
BenchmarkNoProcs 100 5 ns/op
--- BENCH: BenchmarkX
PASS
`
	got, err := parseBench(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"Save": 1712345, "Reads/Nearest/100": 220, "Open10000/checkpoint": 21e6, "NoProcs": 5}
	if len(got) != len(want) {
		t.Fatalf("parsed %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
