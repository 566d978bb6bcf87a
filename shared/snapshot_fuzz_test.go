package shared

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var fuzzNow = time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC)

const fuzzGood = `{"account":"default","scrapedAt":"2026-11-28T13:50:00Z","source":"claude.ai/settings/usage","capture":"api",
"meters":[{"id":"session","label":"Current session","percentUsed":42,"resetsAt":"2026-11-28T16:00:00Z","resetsText":"Resets in 2 hr 10 min"},
{"id":"weekly_all","label":"All models","percentUsed":18,"resetsAt":"2026-12-04T09:00:00Z"}],
"extraUsage":{"enabled":true,"usedCents":1250,"limitCents":5000,"currency":"USD"},"partial":false,"extractionErrors":{}}`

// FuzzDecodeSnapshot checks the POST body path: decoding never panics and
// fails only with a *ValidationError naming a field; a snapshot that
// validates re-encodes to a body that decodes and validates again, to the
// same canonical bytes (the server's idempotency hash depends on that).
func FuzzDecodeSnapshot(f *testing.F) {
	seeds := []string{
		fuzzGood,
		`{}`,
		``,
		`null`,
		`[]`,
		`{"meters":[]}`,
		`{"scrapedAt":"2026-11-28T13:50:00+01:00","meters":[{"id":"x","label":"é","percentUsed":0}]}`,
		`{"scrapedAt":"2026-11-28T13:50:00.123456789Z","meters":[{"id":"weekly_haiku","label":"Haiku","percentUsed":100,"resetsAt":null}],"partial":true,"extractionErrors":{"weekly_opus":"not found"}}`,
		`{"scrapedAt":"2026-11-28T13:50:00Z","meters":[{"id":"a","label":"a","percentUsed":-0}]}`,
		`{"scrapedAt":"2026-11-28T13:50:00Z","meters":[{"id":"a","label":"<&>\u2028","percentUsed":1e-300}]}`,
		`{"scrapedAt":"9999-12-31T23:59:59Z","meters":[{"id":"a","label":"a","percentUsed":1}]}`,
		`{"scrapedAt":"2026-11-28T13:50:00Z","meters":[{"id":"a","label":"a","percentUsed":1e400}]}`,
		`{"scrapedAt":"2026-11-28T13:50:00Z","meters":[{"id":"a","label":"a","percentUsed":"1"}]}`,
		`{"scrapedAt":"yesterday"}`,
		`{"unknown":1}`,
		`{} {}`,
		"{\"account\":\"\xff\"}",
		`{"scrapedAt":"2026-11-28T13:50:00Z","meters":[{"id":"a","label":"a","percentUsed":1}],"extraUsage":{"usedCents":-1}}`,
		// Times that parse but leave 2000-9999 once in UTC.
		`{"scrapedAt":"2026-11-28T13:50:00Z","meters":[{"id":"a","label":"a","percentUsed":1,"resetsAt":"9999-12-31T23:59:59-01:00"}]}`,
		`{"scrapedAt":"0000-01-01T00:00:00+01:00","meters":[{"id":"a","label":"a","percentUsed":1}]}`,
		`{"scrapedAt":"1999-12-31T23:59:59Z","meters":[{"id":"a","label":"a","percentUsed":1}]}`,
		// Text that would display or log as something else.
		`{"scrapedAt":"2026-11-28T13:50:00Z","meters":[{"id":"a","label":"1 \u202e%001","percentUsed":1}]}`,
		`{"scrapedAt":"2026-11-28T13:50:00Z","meters":[{"id":"a","label":"a","percentUsed":1,"resetsText":"in\n2 h\u2066"}]}`,
		`{"scrapedAt":"2026-11-28T13:50:00Z","meters":[{"id":"a","label":"a","percentUsed":1}],"partial":true,"extractionErrors":{"b":"x\u0000\u200f"}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := DecodeSnapshot(body)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 || ve.Field() == "" {
				t.Fatalf("DecodeSnapshot(%q) error %T %v, want a *ValidationError with a field", body, err, err)
			}
			return
		}
		s.Normalize()
		if err := s.Validate(fuzzNow); err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate error %T, want *ValidationError", err)
			}
			for _, p := range ve.Problems {
				if p.Field == "" || p.Reason == "" {
					t.Fatalf("problem without field or reason: %+v", p)
				}
			}
			return
		}
		enc, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("re-encoding a valid snapshot: %v", err)
		}
		s2, err := DecodeSnapshot(enc)
		if err != nil {
			t.Fatalf("re-encoded snapshot %s does not decode: %v", enc, err)
		}
		s2.Normalize()
		if err := s2.Validate(fuzzNow); err != nil {
			t.Fatalf("re-encoded snapshot %s does not validate: %v", enc, err)
		}
		enc2, err := json.Marshal(s2)
		if err != nil {
			t.Fatalf("second re-encoding: %v", err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("canonical encoding is not stable:\n%s\n%s", enc, enc2)
		}
	})
}

func TestFuzzSeedsCoverBothPaths(t *testing.T) {
	// The seed corpus must reach the round-trip branch, or the fuzz
	// target's main property is never exercised in `go test`.
	s, err := DecodeSnapshot([]byte(fuzzGood))
	if err != nil {
		t.Fatalf("good seed does not decode: %v", err)
	}
	s.Normalize()
	if err := s.Validate(fuzzNow); err != nil {
		t.Fatalf("good seed does not validate: %v", err)
	}
	if _, err := DecodeSnapshot([]byte(strings.Replace(fuzzGood, `"partial"`, `"bogus"`, 1))); err == nil {
		t.Fatal("unknown field accepted")
	}
}
