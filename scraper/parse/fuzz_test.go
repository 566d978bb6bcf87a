package parse

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The fuzz targets hold the parsers to two promises: no panic on any
// input, and whatever they return without error passes the server's
// validation (so the scraper never produces a snapshot the server rejects).

func FuzzParseAPI(f *testing.F) {
	files, _ := filepath.Glob("testdata/api/*.json")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"limits":[{"kind":"weekly_scoped","percent":1,"scope":{"model":{"id":"","display_name":"\u00e9\u00e9"}}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := ParseAPI(body, testNow)
		if err != nil {
			return
		}
		s.Normalize()
		if vErr := s.Validate(testNow); vErr != nil {
			t.Fatalf("ParseAPI(%q) gave an invalid snapshot: %v", body, vErr)
		}
	})
}

func FuzzParseDOM(f *testing.F) {
	files, _ := filepath.Glob("testdata/dom/*.txt")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("Current session\nResets in 99999 hr\n5% used")
	loc := time.FixedZone("X", -5*3600)
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseDOM(text, testNow, loc)
		if err != nil {
			return
		}
		s.Normalize()
		if vErr := s.Validate(testNow); vErr != nil {
			t.Fatalf("ParseDOM(%q) gave an invalid snapshot: %v", text, vErr)
		}
	})
}
