package parse

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
)

// These tests state the rules directly, so that a golden file regenerated
// with -update cannot quietly accept a wrong mapping.

func meterIDs(s shared.Snapshot) []string {
	var ids []string
	for _, m := range s.Meters {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestParseAPIRules(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantIDs    []string
		wantLabels []string
		wantErrs   []string // ids in ExtractionErrors
		wantClass  scrapeerr.Class
	}{
		{
			name:       "legacy keys map to known meters in page order",
			body:       `{"seven_day_opus":{"utilization":1,"resets_at":null},"seven_day":{"utilization":2,"resets_at":null},"five_hour":{"utilization":3,"resets_at":null},"seven_day_sonnet":{"utilization":4,"resets_at":null}}`,
			wantIDs:    []string{"session", "weekly_all", "weekly_sonnet", "weekly_opus"},
			wantLabels: []string{"Current session", "All models", "Sonnet only", "Opus only"},
		},
		{
			name:    "null keys give no meter and no error",
			body:    `{"five_hour":{"utilization":3,"resets_at":null},"seven_day":null,"seven_day_opus":null}`,
			wantIDs: []string{"session"},
		},
		{
			name:       "unknown key with utilization becomes a sanitized meter",
			body:       `{"five_hour":{"utilization":3,"resets_at":null},"Weird Key/X":{"utilization":9,"resets_at":null},"extra_usage":{"utilization":50,"is_enabled":true}}`,
			wantIDs:    []string{"session", "weird_key_x"},
			wantLabels: []string{"Current session", "Weird key x"},
		},
		{
			name:     "out of range utilization is an extraction error",
			body:     `{"five_hour":{"utilization":101,"resets_at":null},"seven_day":{"utilization":2,"resets_at":null}}`,
			wantIDs:  []string{"weekly_all"},
			wantErrs: []string{"session"},
		},
		{
			name:       "limits array with scoped models",
			body:       `{"limits":[{"kind":"weekly_scoped","percent":5,"resets_at":null,"scope":{"model":{"id":"claude-opus-4","display_name":"Opus 4"}},"is_active":true},{"kind":"session","percent":1,"resets_at":null,"scope":null,"is_active":true}]}`,
			wantIDs:    []string{"weekly_opus", "session"},
			wantLabels: []string{"Opus only", "Current session"},
		},
		{
			name:       "two limits with the same id both survive",
			body:       `{"limits":[{"kind":"session","percent":1},{"kind":"session","percent":2}]}`,
			wantIDs:    []string{"session", "session_2"},
			wantLabels: []string{"Current session", "Current session"},
		},
		{
			name:      "no meter is layout changed",
			body:      `{"extra_usage":{"is_enabled":true,"monthly_limit":100,"used_credits":5}}`,
			wantClass: scrapeerr.LayoutChanged,
		},
		{
			name:      "only unreadable meters is layout changed",
			body:      `{"five_hour":{"utilization":"x","resets_at":null}}`,
			wantErrs:  []string{"session"},
			wantClass: scrapeerr.LayoutChanged,
		},
		{
			name:      "array body is layout changed",
			body:      `[1,2]`,
			wantClass: scrapeerr.LayoutChanged,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseAPI([]byte(tt.body), testNow)
			if got, want := scrapeerr.Class(""), tt.wantClass; err != nil {
				got = scrapeerr.ClassOf(err)
				if got != want {
					t.Fatalf("class = %q, want %q (err %v)", got, want, err)
				}
			} else if got != want {
				t.Fatalf("no error, want class %q", want)
			}
			if got, want := meterIDs(s), tt.wantIDs; !slices.Equal(got, want) {
				t.Errorf("meter ids = %v, want %v", got, want)
			}
			for i, want := range tt.wantLabels {
				if got := s.Meters[i].Label; got != want {
					t.Errorf("meters[%d].label = %q, want %q", i, got, want)
				}
			}
			var errIDs []string
			for id := range s.ExtractionErrors {
				errIDs = append(errIDs, id)
			}
			slices.Sort(errIDs)
			if got, want := errIDs, tt.wantErrs; !slices.Equal(got, want) {
				t.Errorf("extraction error ids = %v, want %v", got, want)
			}
			if got, want := s.Partial, len(tt.wantErrs) > 0; got != want {
				t.Errorf("partial = %v, want %v", got, want)
			}
			if got, want := s.Capture, shared.CaptureAPI; got != want {
				t.Errorf("capture = %q, want %q", got, want)
			}
		})
	}
}

func TestParseAPIExtraUsageCents(t *testing.T) {
	tests := []struct {
		name string
		body string
		want shared.ExtraUsage
	}{
		{"credits as numbers", `{"used_credits":1250.4,"monthly_limit":5000,"is_enabled":true,"currency":"usd"}`, shared.ExtraUsage{Enabled: true, UsedCents: 1250, LimitCents: 5000, Currency: "USD"}},
		{"cents names and strings", `{"enabled":true,"used_cents":"99","limit_cents":100}`, shared.ExtraUsage{Enabled: true, UsedCents: 99, LimitCents: 100}},
		{"disabled with nulls", `{"is_enabled":false,"used_credits":null,"monthly_limit":null}`, shared.ExtraUsage{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseAPI([]byte(`{"five_hour":{"utilization":1,"resets_at":null},"extra_usage":`+tt.body+`}`), testNow)
			if err != nil {
				t.Fatal(err)
			}
			if s.ExtraUsage == nil {
				t.Fatal("extraUsage = nil")
			}
			if got, want := *s.ExtraUsage, tt.want; got != want {
				t.Errorf("extraUsage = %+v, want %+v", got, want)
			}
		})
	}
}

func TestParseDOMResets(t *testing.T) {
	loc := newYork(t)
	// testNow is Saturday 2026-11-28 08:50 in New York (EST, UTC-5).
	tests := []struct {
		name, line string
		want       string // RFC 3339 UTC, "" for nil
	}{
		{"hours and minutes", "Resets in 2 hr 10 min", "2026-11-28T16:00:00Z"},
		{"minutes only", "Resets in 5 min", "2026-11-28T13:55:00Z"},
		{"long units", "Resets in 1 hour 1 minute", "2026-11-28T14:51:00Z"},
		{"days", "Resets in 2 days", "2026-11-30T13:50:00Z"},
		{"weekday later this week", "Resets Thu 9:00 AM", "2026-12-03T14:00:00Z"},
		{"same weekday later today", "Resets Sat 9:00 AM", "2026-11-28T14:00:00Z"},
		{"same weekday already passed is next week", "Resets Sat 8:00 AM", "2026-12-05T13:00:00Z"},
		{"pm", "Resets Sun 11:30 PM", "2026-11-30T04:30:00Z"},
		{"noon", "Resets Mon 12:00 PM", "2026-11-30T17:00:00Z"},
		{"midnight", "Resets Mon 12:00 AM", "2026-11-30T05:00:00Z"},
		{"24-hour clock", "Resets Tue 21:00", "2026-12-02T02:00:00Z"},
		{"bare time", "Resets 8:00 AM", "2026-11-29T13:00:00Z"},
		{"tomorrow", "Resets tomorrow at 9 AM", "2026-11-29T14:00:00Z"},
		{"month and day", "Resets Dec 4, 9:00 AM", "2026-12-04T14:00:00Z"},
		{"month and day with at", "Resets on December 4 at 9 PM", "2026-12-05T02:00:00Z"},
		{"date already passed is next year", "Resets Jan 2, 12:00 AM", "2027-01-02T05:00:00Z"},
		{"date earlier this year is next year", "Resets Nov 1, 9:00 AM", "2027-11-01T13:00:00Z"},
		{"impossible date", "Resets Feb 30, 9:00 AM", ""},
		{"unknown wording", "Resets soon", ""},
		{"bad hour", "Resets Thu 13:00 PM", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseDOM("Current session\n"+tt.line+"\n10% used\n", testNow, loc)
			if err != nil {
				t.Fatal(err)
			}
			m := s.Meters[0]
			if got, want := m.ResetsText, tt.line; got != want {
				t.Errorf("resetsText = %q, want %q", got, want)
			}
			got := ""
			if m.ResetsAt != nil {
				got = m.ResetsAt.Format(time.RFC3339)
			}
			if got != tt.want {
				t.Errorf("resetsAt = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseDOMMeters(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		wantIDs   []string
		wantPct   []float64
		wantErrs  int
		wantClass scrapeerr.Class
	}{
		{"percent on the same line as other words", "Current session\nResets in 1 hr\nYou have 42% used\n", []string{"session"}, []float64{42}, 0, ""},
		{"section does not borrow the next meter's percent", "Current session\nResets in 1 hr\nAll models\n5% used\n", []string{"weekly_all"}, []float64{5}, 1, ""},
		{"percent over 100", "Current session\n140% used\nAll models\n5% used", []string{"weekly_all"}, []float64{5}, 1, ""},
		{"scoped model label", "Claude Sonnet 4.5 only\n7% used", []string{"weekly_sonnet"}, []float64{7}, 0, ""},
		{"empty text", "", nil, nil, 0, scrapeerr.LayoutChanged},
		{"labels without numbers", "Current session\nAll models\n", nil, nil, 2, scrapeerr.LayoutChanged},
		{"very long reset text is clipped to the wire limit", "Current session\nResets " + strings.Repeat("x", 300) + "\n5% used", []string{"session"}, []float64{5}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseDOM(tt.text, testNow, time.UTC)
			if got, want := classOf(err), tt.wantClass; got != want {
				t.Fatalf("class = %q, want %q (err %v)", got, want, err)
			}
			if got, want := meterIDs(s), tt.wantIDs; !slices.Equal(got, want) {
				t.Errorf("ids = %v, want %v", got, want)
			}
			for i, want := range tt.wantPct {
				if got := s.Meters[i].PercentUsed; got != want {
					t.Errorf("meters[%d].percentUsed = %g, want %g", i, got, want)
				}
			}
			if got, want := len(s.ExtractionErrors), tt.wantErrs; got != want {
				t.Errorf("extraction errors = %v, want %d", s.ExtractionErrors, want)
			}
			if got, want := s.Capture, shared.CaptureDOM; got != want {
				t.Errorf("capture = %q, want %q", got, want)
			}
			if err == nil {
				v := s
				v.Normalize()
				if vErr := v.Validate(testNow); vErr != nil {
					t.Errorf("snapshot fails shared validation: %v", vErr)
				}
			}
		})
	}
}

func classOf(err error) scrapeerr.Class {
	if err == nil {
		return ""
	}
	var se *scrapeerr.Error
	if !errors.As(err, &se) {
		return "not-a-scrapeerr"
	}
	return se.Class
}

func TestCompare(t *testing.T) {
	snap := func(pcts map[string]float64) shared.Snapshot {
		var s shared.Snapshot
		for _, id := range []string{"session", "weekly_all", "weekly_opus"} {
			if p, ok := pcts[id]; ok {
				s.Meters = append(s.Meters, shared.Meter{ID: id, Label: id, PercentUsed: p})
			}
		}
		return s
	}
	tests := []struct {
		name     string
		api, dom map[string]float64
		want     []string // substrings, one per disagreement, in order
	}{
		{"agree", map[string]float64{"session": 42, "weekly_all": 18}, map[string]float64{"session": 42, "weekly_all": 18}, nil},
		{"within one point", map[string]float64{"session": 42.4}, map[string]float64{"session": 42}, nil},
		{"differ by more than one", map[string]float64{"session": 42}, map[string]float64{"session": 44}, []string{"session: JSON says 42%, page says 44%"}},
		{"missing on page", map[string]float64{"session": 1, "weekly_opus": 2}, map[string]float64{"session": 1}, []string{"weekly_opus: in JSON"}},
		{"missing in JSON", map[string]float64{"session": 1}, map[string]float64{"session": 1, "weekly_all": 3}, []string{"weekly_all: on the page"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compare(snap(tt.api), snap(tt.dom))
			if len(got) != len(tt.want) {
				t.Fatalf("Compare = %q, want %d entries", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("Compare[%d] = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestDetectPage(t *testing.T) {
	const usage = "https://claude.ai/settings/usage"
	tests := []struct {
		name, url, title, text string
		want                   scrapeerr.Class
	}{
		{"usage page", usage, "Settings - Claude", "Current session\nResets in 2 hr\n42% used\nLog out", ""},
		{"cloudflare title", usage, "Just a moment...", "", scrapeerr.Challenge},
		{"verify human text", usage, "claude.ai", "Verify you are human by completing the action below.", scrapeerr.Challenge},
		{"checking browser", usage, "", "Checking your browser before accessing claude.ai", scrapeerr.Challenge},
		{"challenge with sign-in words is still a challenge", "https://claude.ai/login", "Just a moment...", "Sign in", scrapeerr.Challenge},
		{"challenge query", usage + "?__cf_chl_rt_tk=abc", "", "", scrapeerr.Challenge},
		{"localized challenge html", usage, "Einen Moment bitte…", `<div id="challenge-stage"></div><script>window._cf_chl_opt={cType:"managed"}</script><a href="/login">Anmelden</a>`, scrapeerr.Challenge},
		{"login path", "https://claude.ai/login?returnTo=%2Fsettings%2Fusage", "Claude", "", scrapeerr.NotLoggedIn},
		{"auth path", "https://claude.ai/auth/callback", "", "", scrapeerr.NotLoggedIn},
		{"sign-in page on usage url", usage, "Claude", "Log in or sign up\nContinue with Google", scrapeerr.NotLoggedIn},
		{"login words next to meters are not a login page", usage, "", "Sign in activity\n42% used", ""},
		{"path only looks like login", "https://claude.ai/loginhelp", "", "nothing here", ""},
		{"layout changed page is not classified", usage, "Settings", "We moved this page", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := DetectPage(tt.url, tt.title, tt.text), tt.want; got != want {
				t.Errorf("DetectPage = %q, want %q", got, want)
			}
		})
	}
}

func TestSanitizeIDAndLabel(t *testing.T) {
	tests := []struct{ in, id, label string }{
		{"seven_day_oauth_apps", "seven_day_oauth_apps", "Oauth apps (7 days)"},
		{"seven_day_foo_bar", "seven_day_foo_bar", "Foo bar (7 days)"},
		{"weekly_claude_code", "weekly_claude_code", "Claude code (7 days)"},
		{"seven_day", "seven_day", "7 days"},
		{"Iguana-Necktie!", "iguana_necktie", "Iguana necktie"},
		{"five_hour_extra", "five_hour_extra", "Extra (5 hours)"},
		{"!!!", "", "Limit"},
		{strings.Repeat("ab_", 30), "ab_ab_ab_ab_ab_ab_ab_ab_ab_ab_ab_ab_ab_ab_ab_ab", "Ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			id := SanitizeID(tt.in)
			if got, want := id, tt.id; got != want {
				t.Errorf("SanitizeID = %q, want %q", got, want)
			}
			if id != "" && !shared.MeterIDPattern.MatchString(id) {
				t.Errorf("SanitizeID = %q does not match the meter id pattern", id)
			}
			if got, want := HumanLabel(tt.in), tt.label; got != want {
				t.Errorf("HumanLabel = %q, want %q", got, want)
			}
		})
	}
}
