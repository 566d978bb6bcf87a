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
		{"resetsText too long", func(s *Snapshot) { s.Meters[0].ResetsText = strings.Repeat("r", 201) }, "meters[0].resetsText"},
		{"extra used negative", func(s *Snapshot) { s.ExtraUsage = &ExtraUsage{UsedCents: -1} }, "extraUsage.usedCents"},
		{"extra limit negative", func(s *Snapshot) { s.ExtraUsage = &ExtraUsage{LimitCents: -1} }, "extraUsage.limitCents"},
		{"extra currency long", func(s *Snapshot) { s.ExtraUsage = &ExtraUsage{Currency: "123456789"} }, "extraUsage.currency"},
		{"extraction key bad", func(s *Snapshot) { s.ExtractionErrors = map[string]string{"Bad Key": "x"} }, "extractionErrors"},
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
	if got, want := ve.Error(), "capture must be one of api, dom, got \"x\" (and 2 more)"; got != want {
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

func nMeters(n int) []Meter {
	ms := make([]Meter, n)
	for i := range ms {
		ms[i] = Meter{ID: fmt.Sprintf("m%d", i), Label: "M", PercentUsed: 1}
	}
	return ms
}
