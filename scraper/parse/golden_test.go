package parse

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the DOM goldens use America/New_York on any machine

	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
)

var update = flag.Bool("update", false, "rewrite the *.golden.json files from the parser output")

// testNow is a Saturday, 08:50 in New York.
var testNow = time.Date(2026, 11, 28, 13, 50, 0, 0, time.UTC)

func newYork(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatalf("load location: %v", err)
	}
	return loc
}

// golden is what a golden file records: the snapshot and the failure class.
type golden struct {
	Class    scrapeerr.Class `json:"class"`
	Error    string          `json:"error,omitempty"`
	Snapshot shared.Snapshot `json:"snapshot"`
}

func checkGolden(t *testing.T, input string, snap shared.Snapshot, err error) {
	t.Helper()
	got := golden{Snapshot: snap}
	if err != nil {
		var se *scrapeerr.Error
		if !errors.As(err, &se) {
			t.Fatalf("error %v is not a *scrapeerr.Error", err)
		}
		if !strings.HasPrefix(err.Error(), "scrape: ") {
			t.Errorf("error %q does not start with the package subject", err)
		}
		got.Class = se.Class
		got.Error = err.Error()
	}
	b, mErr := json.MarshalIndent(got, "", "  ")
	if mErr != nil {
		t.Fatal(mErr)
	}
	b = append(b, '\n')
	path := strings.TrimSuffix(input, filepath.Ext(input)) + ".golden.json"
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, rErr := os.ReadFile(path)
	if rErr != nil {
		t.Fatalf("read golden (run go test ./scraper/parse -update to create it): %v", rErr)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("%s differs from the parser output:\n--- got\n%s\n--- want\n%s", path, b, want)
	}
	// Whatever parses must also pass the server's validation, or the
	// scraper would produce snapshots that are rejected for ever.
	if err == nil {
		s := snap
		s.Normalize()
		if vErr := s.Validate(testNow); vErr != nil {
			t.Errorf("snapshot fails shared validation: %v", vErr)
		}
	}
}

func inputs(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if !strings.HasSuffix(f, ".golden.json") {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no inputs match %s", pattern)
	}
	return out
}

func TestParseAPIGolden(t *testing.T) {
	for _, in := range inputs(t, "testdata/api/*.json") {
		t.Run(filepath.Base(in), func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := ParseAPI(body, testNow)
			checkGolden(t, in, snap, err)
		})
	}
}

func TestParseDOMGolden(t *testing.T) {
	loc := newYork(t)
	for _, in := range inputs(t, "testdata/dom/*.txt") {
		t.Run(filepath.Base(in), func(t *testing.T) {
			text, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := ParseDOM(string(text), testNow, loc)
			checkGolden(t, in, snap, err)
		})
	}
}

// The OAuth endpoint's bodies go through the same parser; their goldens
// pin the capture and source it stamps.
func TestParseOAuthGolden(t *testing.T) {
	for _, in := range inputs(t, "testdata/oauth/*.json") {
		t.Run(filepath.Base(in), func(t *testing.T) {
			body, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := ParseOAuth(body, testNow)
			checkGolden(t, in, snap, err)
		})
	}
}
