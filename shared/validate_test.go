package shared

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func validSnapshot(now time.Time) Snapshot {
	r := now.Add(2 * time.Hour)
	return Snapshot{
		Account:   "default",
		ScrapedAt: now.Add(-time.Minute),
		Source:    "claude.ai/settings/usage",
		Capture:   CaptureAPI,
		Meters: []Meter{
			{ID: MeterSession, Label: "Current session", PercentUsed: 42, ResetsAt: &r},
			{ID: MeterWeeklyAll, Label: "All models", PercentUsed: 18},
		},
	}
}

func TestValidate(t *testing.T) {
	now := time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC)
	zero := time.Time{}
	tests := []struct {
		name   string
		mutate func(*Snapshot)
		field  string // "" means valid
	}{
		{"valid", func(*Snapshot) {}, ""},
		{"unknown meter id accepted", func(s *Snapshot) { s.Meters[1].ID = "weekly_haiku_5" }, ""},
		{"percent bounds inclusive", func(s *Snapshot) { s.Meters[0].PercentUsed, s.Meters[1].PercentUsed = 0, 100 }, ""},
		{"scrapedAt 5 min ahead ok", func(s *Snapshot) { s.ScrapedAt = now.Add(5 * time.Minute) }, ""},
		{"32 meters ok", func(s *Snapshot) { s.Meters = nMeters(32) }, ""},
		{"account with dots", func(s *Snapshot) { s.Account = "me@example.com" }, ""},
		{"empty account", func(s *Snapshot) { s.Account = "" }, "account"},
		{"account upper case", func(s *Snapshot) { s.Account = "Default" }, "account"},
		{"account path", func(s *Snapshot) { s.Account = "../x" }, "account"},
		{"account too long", func(s *Snapshot) { s.Account = strings.Repeat("a", 65) }, "account"},
		{"scrapedAt missing", func(s *Snapshot) { s.ScrapedAt = time.Time{} }, "scrapedAt"},
		{"scrapedAt future", func(s *Snapshot) { s.ScrapedAt = now.Add(5*time.Minute + time.Second) }, "scrapedAt"},
		{"capture empty", func(s *Snapshot) { s.Capture = "" }, "capture"},
		{"capture unknown", func(s *Snapshot) { s.Capture = "ocr" }, "capture"},
		{"source too long", func(s *Snapshot) { s.Source = strings.Repeat("s", 201) }, "source"},
		{"no meters", func(s *Snapshot) { s.Meters = nil }, "meters"},
		{"33 meters", func(s *Snapshot) { s.Meters = nMeters(33) }, "meters"},
		{"meter id upper", func(s *Snapshot) { s.Meters[0].ID = "Session" }, "meters[0].id"},
		{"meter id too long", func(s *Snapshot) { s.Meters[0].ID = strings.Repeat("a", 49) }, "meters[0].id"},
		{"meter id duplicate", func(s *Snapshot) { s.Meters[1].ID = s.Meters[0].ID }, "meters[1].id"},
		{"label empty", func(s *Snapshot) { s.Meters[1].Label = "" }, "meters[1].label"},
		{"label 101 runes", func(s *Snapshot) { s.Meters[0].Label = strings.Repeat("é", 101) }, "meters[0].label"},
		{"percent negative", func(s *Snapshot) { s.Meters[0].PercentUsed = -0.5 }, "meters[0].percentUsed"},
		{"percent over 100", func(s *Snapshot) { s.Meters[1].PercentUsed = 140 }, "meters[1].percentUsed"},
		{"percent NaN", func(s *Snapshot) { s.Meters[0].PercentUsed = math.NaN() }, "meters[0].percentUsed"},
		{"percent Inf", func(s *Snapshot) { s.Meters[0].PercentUsed = math.Inf(1) }, "meters[0].percentUsed"},
		{"resetsAt zero", func(s *Snapshot) { s.Meters[1].ResetsAt = &zero }, "meters[1].resetsAt"},
		{"capture oauth", func(s *Snapshot) { s.Capture = CaptureOAuth }, ""},
		{"capture statusline", func(s *Snapshot) { s.Capture = CaptureStatusline }, ""},
		{"drift valid", func(s *Snapshot) { s.Drift = map[string]DriftPair{MeterSession: {API: 42, DOM: 45}} }, ""},
		{"drift bad key", func(s *Snapshot) { s.Drift = map[string]DriftPair{"Bad Key": {API: 1, DOM: 5}} }, "drift"},
		{"drift value out of range", func(s *Snapshot) { s.Drift = map[string]DriftPair{MeterSession: {API: 101, DOM: 5}} }, "drift.session.api"},
		{"pace carried by a snapshot", func(s *Snapshot) { s.Meters[0].Pace = &Pace{Band: BandOn} }, "meters[0].pace"},
		{"resetsText too long", func(s *Snapshot) { s.Meters[0].ResetsText = strings.Repeat("r", 201) }, "meters[0].resetsText"},
		{"extra used negative", func(s *Snapshot) { s.ExtraUsage = &ExtraUsage{UsedCents: -1} }, "extraUsage.usedCents"},
		{"extra limit negative", func(s *Snapshot) { s.ExtraUsage = &ExtraUsage{LimitCents: -1} }, "extraUsage.limitCents"},
		{"extra currency long", func(s *Snapshot) { s.ExtraUsage = &ExtraUsage{Currency: "123456789"} }, "extraUsage.currency"},
		{"extraction key bad", func(s *Snapshot) { s.ExtractionErrors = map[string]string{"Bad Key": "x"} }, "extractionErrors"},
		{"scrapedAt at the start of 2000 ok", func(s *Snapshot) { s.ScrapedAt = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) }, ""},
		{"scrapedAt before 2000", func(s *Snapshot) { s.ScrapedAt = time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC) }, "scrapedAt"},
		{"scrapedAt before 2000 only in UTC", func(s *Snapshot) { s.ScrapedAt = time.Date(2000, 1, 1, 0, 30, 0, 0, plusOne) }, "scrapedAt"},
		{"scrapedAt year 0 with an offset", func(s *Snapshot) { s.ScrapedAt = time.Date(0, 1, 1, 0, 30, 0, 0, plusOne) }, "scrapedAt"},
		{"resetsAt at the end of 9999 ok", func(s *Snapshot) { s.Meters[0].ResetsAt = ptr(time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)) }, ""},
		{"resetsAt past 9999 in UTC", func(s *Snapshot) { s.Meters[0].ResetsAt = ptr(time.Date(9999, 12, 31, 23, 30, 0, 0, minusOne)) }, "meters[0].resetsAt"},
		{"resetsAt before 2000", func(s *Snapshot) { s.Meters[1].ResetsAt = ptr(time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)) }, "meters[1].resetsAt"},
		{"label with accents and symbols ok", func(s *Snapshot) { s.Meters[0].Label = "Opus 4 · café ✓" }, ""},
		{"label with a bell", func(s *Snapshot) { s.Meters[0].Label = "Current\x07session" }, "meters[0].label"},
		{"label with a newline", func(s *Snapshot) { s.Meters[1].Label = "All\nmodels" }, "meters[1].label"},
		{"label with a tab", func(s *Snapshot) { s.Meters[1].Label = "All\tmodels" }, "meters[1].label"},
		{"label with DEL", func(s *Snapshot) { s.Meters[1].Label = "All\x7fmodels" }, "meters[1].label"},
		{"label with a C1 control", func(s *Snapshot) { s.Meters[1].Label = "All\u0085models" }, "meters[1].label"},
		{"label with a right-to-left override", func(s *Snapshot) { s.Meters[0].Label = "Session \u202e%001" }, "meters[0].label"},
		{"resetsText with an isolate", func(s *Snapshot) { s.Meters[0].ResetsText = "Resets \u2067in 2 hr" }, "meters[0].resetsText"},
		{"resetsText with a newline", func(s *Snapshot) { s.Meters[0].ResetsText = "Resets\nin 2 hr" }, "meters[0].resetsText"},
		{"source with a newline", func(s *Snapshot) { s.Source = "claude.ai\nforged log line" }, "source"},
		{"currency with an Arabic letter mark", func(s *Snapshot) { s.ExtraUsage = &ExtraUsage{Currency: "US\u061cD"} }, "extraUsage.currency"},
		{"extraction reason with a mark", func(s *Snapshot) {
			s.ExtractionErrors = map[string]string{"weekly_opus": "not \u200ffound"}
		}, "extractionErrors.weekly_opus"},
		{"extraction reason with a control", func(s *Snapshot) {
			s.ExtractionErrors = map[string]string{"weekly_opus": "not\x1bfound"}
		}, "extractionErrors.weekly_opus"},
		{"extraction reason long", func(s *Snapshot) {
			s.ExtractionErrors = map[string]string{"weekly_opus": strings.Repeat("x", 501)}
		}, "extractionErrors.weekly_opus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSnapshot(now)
			tt.mutate(&s)
			err := s.Validate(now)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want *ValidationError", err)
			}
			if got, want := ve.Field(), tt.field; got != want {
				t.Errorf("field = %q, want %q (problems %v)", got, want, ve.Problems)
			}
		})
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	now := time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC)
	s := validSnapshot(now)
	s.Meters[0].PercentUsed = 101
	s.Meters[1].Label = ""
	s.Capture = "x"
	var ve *ValidationError
	if !errors.As(s.Validate(now), &ve) {
		t.Fatal("want a ValidationError")
	}
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	if got, want := strings.Join(fields, ","), "capture,meters[0].percentUsed,meters[1].label"; got != want {
		t.Errorf("fields = %s, want %s", got, want)
	}
	if got, want := ve.Error(), "capture must be one of api, dom, oauth, statusline, got \"x\" (and 2 more)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestNormalizeDefaults(t *testing.T) {
	loc := time.FixedZone("CET", 3600)
	s := Snapshot{ScrapedAt: time.Date(2026, 1, 1, 13, 0, 0, 0, loc)}
	s.Normalize()
	if got, want := s.Account, DefaultAccount; got != want {
		t.Errorf("account = %q, want %q", got, want)
	}
	if got, want := s.Capture, CaptureAPI; got != want {
		t.Errorf("capture = %q, want %q", got, want)
	}
	if got, want := s.ScrapedAt.Location(), time.UTC; got != want {
		t.Errorf("scrapedAt location = %v, want UTC", got)
	}
}

var (
	plusOne  = time.FixedZone("+01", 3600)
	minusOne = time.FixedZone("-01", -3600)
)

func ptr[T any](v T) *T { return &v }

// Every bidirectional formatting character is refused, in any text field.
func TestValidateRefusesEveryBidiFormat(t *testing.T) {
	now := time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC)
	chars := []rune{0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x200E, 0x200F, 0x061C}
	for _, r := range chars {
		t.Run(fmt.Sprintf("%U", r), func(t *testing.T) {
			s := validSnapshot(now)
			s.Meters[0].Label = "1 " + string(r) + "%"
			var ve *ValidationError
			if !errors.As(s.Validate(now), &ve) {
				t.Fatalf("a label with %U was accepted", r)
			}
			if got, want := ve.Field(), "meters[0].label"; got != want {
				t.Errorf("field = %q, want %q", got, want)
			}
			if want := fmt.Sprintf("%U", r); !strings.Contains(ve.Error(), want) {
				t.Errorf("error %q does not name %s", ve.Error(), want)
			}
		})
	}
	// Neighbours of the ranges are ordinary text.
	for _, r := range []rune{0x2029, 0x202F, 0x2065, 0x206A, 0x200D, 0x061B} {
		s := validSnapshot(now)
		s.Meters[0].Label = "a" + string(r) + "b"
		if err := s.Validate(now); err != nil {
			t.Errorf("a label with %U was refused: %v", r, err)
		}
	}
}

// A decoded body whose times land outside 2000-9999 in UTC is refused by
// Validate, so nothing that cannot be encoded again is ever accepted.
func TestDecodedTimesOutOfRange(t *testing.T) {
	now := time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC)
	tests := []struct {
		name, scrapedAt, resetsAt, field string
	}{
		{"resetsAt past 9999 after the offset", "2026-11-28T13:50:00Z", "9999-12-31T23:59:59-01:00", "meters[0].resetsAt"},
		{"resetsAt year 0", "2026-11-28T13:50:00Z", "0000-01-01T00:00:00Z", "meters[0].resetsAt"},
		{"scrapedAt before year 0 after the offset", "0000-01-01T00:00:00+01:00", "2026-11-28T16:00:00Z", "scrapedAt"},
		{"scrapedAt in 1999", "1999-06-01T00:00:00Z", "2026-11-28T16:00:00Z", "scrapedAt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"scrapedAt":"` + tt.scrapedAt + `","meters":[{"id":"session","label":"Current session","percentUsed":1,"resetsAt":"` + tt.resetsAt + `"}]}`
			s, err := DecodeSnapshot([]byte(body))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			s.Normalize()
			var ve *ValidationError
			if !errors.As(s.Validate(now), &ve) {
				t.Fatal("accepted")
			}
			if got, want := ve.Field(), tt.field; got != want {
				t.Errorf("field = %q, want %q (%v)", got, want, ve)
			}
		})
	}
}

func nMeters(n int) []Meter {
	ms := make([]Meter, n)
	for i := range ms {
		ms[i] = Meter{ID: fmt.Sprintf("m%d", i), Label: "M", PercentUsed: 1}
	}
	return ms
}
