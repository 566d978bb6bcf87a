package shared

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var statusNow = time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC)

func TestScraperStatusValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*ScraperStatus)
		field  string // "" means valid
	}{
		{"valid failure", func(*ScraperStatus) {}, ""},
		{"valid success without category", func(s *ScraperStatus) { s.OK, s.Category, s.Message = true, "", "" }, ""},
		{"a class a newer scraper adds", func(s *ScraperStatus) { s.Category = "PROFILE_IN_USE" }, ""},
		{"message with accents", func(s *ScraperStatus) { s.Message = "page « Usage » not found — retry" }, ""},
		{"at 2000-01-01 ok", func(s *ScraperStatus) { s.At = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }, ""},
		{"account bad", func(s *ScraperStatus) { s.Account = "../etc" }, "account"},
		{"at missing", func(s *ScraperStatus) { s.At = time.Time{} }, "at"},
		{"at before 2000", func(s *ScraperStatus) { s.At = time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC) }, "at"},
		{"at before year 0 in UTC", func(s *ScraperStatus) { s.At = time.Date(0, 1, 1, 0, 0, 0, 0, plusOne) }, "at"},
		{"at past 9999 in UTC", func(s *ScraperStatus) { s.At = time.Date(9999, 12, 31, 23, 30, 0, 0, minusOne) }, "at"},
		{"at in the future", func(s *ScraperStatus) { s.At = statusNow.Add(6 * time.Minute) }, "at"},
		{"category missing on failure", func(s *ScraperStatus) { s.Category = "" }, "category"},
		{"category lower case", func(s *ScraperStatus) { s.Category = "not_logged_in" }, "category"},
		{"message too long", func(s *ScraperStatus) { s.Message = strings.Repeat("é", MaxStatusMessage+1) }, "message"},
		{"message with a newline", func(s *ScraperStatus) { s.Message = "signed out\n{\"level\":\"INFO\"}" }, "message"},
		{"message with an escape", func(s *ScraperStatus) { s.Message = "signed out \x1b[2J" }, "message"},
		{"message with an override", func(s *ScraperStatus) { s.Message = "signed \u202dout" }, "message"},
		{"message with a mark", func(s *ScraperStatus) { s.Message = "signed \u200eout" }, "message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := ScraperStatus{Account: "default", At: statusNow.Add(-time.Minute), Category: ScrapeNotLoggedIn, Message: "redirected to the login page"}
			tt.mutate(&st)
			err := st.Validate(statusNow)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if _, err := json.Marshal(st); err != nil {
					t.Fatalf("a valid status does not encode: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want a *ValidationError", err)
			}
			if got, want := ve.Field(), tt.field; got != want {
				t.Errorf("field = %q, want %q (%v)", got, want, ve)
			}
		})
	}
}

func TestDecodeScraperStatus(t *testing.T) {
	tests := []struct {
		name, body, field string // field "" means it decodes and validates
	}{
		{"valid", `{"account":"work","at":"2026-11-28T13:59:00+01:00","ok":false,"category":"NOT_LOGGED_IN","message":"signed out"}`, ""},
		{"account defaults", `{"at":"2026-11-28T13:59:00Z","ok":true}`, ""},
		{"unknown field", `{"at":"2026-11-28T13:59:00Z","ok":true,"path":"/x"}`, "path"},
		{"trailing data", `{"at":"2026-11-28T13:59:00Z","ok":true} {}`, "body"},
		{"invalid UTF-8", "{\"at\":\"2026-11-28T13:59:00Z\",\"ok\":true,\"message\":\"\xff\"}", "body"},
		{"wrong type", `{"at":"2026-11-28T13:59:00Z","ok":"yes"}`, "ok"},
		{"not a time", `{"at":"yesterday","ok":true}`, "body"},
		{"at past 9999 after the offset", `{"at":"9999-12-31T23:59:59-01:00","ok":true}`, "at"},
		{"at before year 0 after the offset", `{"at":"0000-01-01T00:00:00+01:00","ok":true}`, "at"},
		{"message with an escaped control", `{"at":"2026-11-28T13:59:00Z","ok":false,"category":"BROWSER","message":"a\u0000b"}`, "message"},
		{"message with an escaped override", `{"at":"2026-11-28T13:59:00Z","ok":false,"category":"BROWSER","message":"a\u202eb"}`, "message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := DecodeScraperStatus([]byte(tt.body))
			if err == nil {
				st.Normalize()
				err = st.Validate(statusNow)
			}
			if tt.field == "" {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				if st.Account == "" || st.At.Location() != time.UTC {
					t.Errorf("not normalized: %+v", st)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T %v, want a *ValidationError", err, err)
			}
			if got, want := ve.Field(), tt.field; got != want {
				t.Errorf("field = %q, want %q (%v)", got, want, ve)
			}
		})
	}
}

// FuzzDecodeScraperStatus: decoding never panics and fails only with a
// *ValidationError naming a field; a status that validates encodes (the
// server keeps and serves it) and decodes to a status that validates again.
func FuzzDecodeScraperStatus(f *testing.F) {
	for _, s := range []string{
		`{"account":"default","at":"2026-11-28T13:59:00Z","ok":false,"category":"NOT_LOGGED_IN","message":"signed out"}`,
		`{"at":"2026-11-28T13:59:00Z","ok":true}`,
		`{"at":"9999-12-31T23:59:59-01:00","ok":true}`,
		`{"at":"0000-01-01T00:00:00+01:00","ok":true}`,
		`{"at":"1999-12-31T23:59:59Z","ok":true}`,
		`{"at":"2026-11-28T13:59:00Z","ok":false,"category":"BROWSER","message":"a\u202eb\n"}`,
		`{"at":"2026-11-28T13:59:00Z","ok":false,"category":"x"}`,
		`{}`, `null`, `[]`, ``, `{"at":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := DecodeScraperStatus(body)
		if err == nil {
			st.Normalize()
			err = st.Validate(statusNow)
		}
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field() == "" {
				t.Fatalf("error %T %v, want a *ValidationError with a field", err, err)
			}
			return
		}
		enc, err := json.Marshal(st)
		if err != nil {
			t.Fatalf("a valid status does not encode: %v (%+v)", err, st)
		}
		st2, err := DecodeScraperStatus(enc)
		if err != nil {
			t.Fatalf("re-encoded status %s does not decode: %v", enc, err)
		}
		st2.Normalize()
		if err := st2.Validate(statusNow); err != nil {
			t.Fatalf("re-encoded status %s does not validate: %v", enc, err)
		}
	})
}
