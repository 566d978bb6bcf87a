package parse

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/claude-usage/widget/scraper/scrapeerr"
)

// TestBuild checks the decision after the page is read: the page's class
// first, JSON preferred, page text kept for resetsText, and every
// disagreement or broken capture reported as a note.
func TestBuild(t *testing.T) {
	t.Parallel()
	page := Page{
		URL:   "https://claude.ai/settings/usage",
		Title: "Settings - Claude",
		Text:  "Current session\nResets in 1 hr\n50% used\nAll models\nResets Thu 9:00 AM\n18% used\n",
	}
	moved := page
	moved.Text = "Usage\nWe redesigned this page"
	api := []byte(`{"five_hour":{"utilization":42,"resets_at":"2026-11-28T14:50:00Z"},"seven_day":{"utilization":18,"resets_at":null}}`)
	for _, tc := range []struct {
		name        string
		capture     Capture
		wantClass   scrapeerr.Class // "": success
		wantCapture string
		wantPct     float64 // of the session meter
		wantText    string  // resetsText of the session meter
		wantNote    Note
		wantInErr   []string
	}{
		{name: "JSON wins, page text kept, disagreement noted",
			capture: Capture{Page: page, APIBody: api, APIStatus: 200}, wantCapture: "api", wantPct: 42, wantText: "Resets in 1 hr",
			wantNote: Note{slog.LevelWarn, "captures disagree", "detail", "meter session: JSON says 42%, page says 50%"}},
		{name: "JSON with an error status falls back to the text",
			capture: Capture{Page: page, APIBody: []byte(`{"error":"x"}`), APIStatus: 500}, wantCapture: "dom", wantPct: 50, wantText: "Resets in 1 hr",
			wantNote: Note{slog.LevelInfo, "using the page text", "reason", "browser: usage JSON answered HTTP 500"}},
		{name: "JSON fine, page text unreadable: the broken fallback is noted",
			capture: Capture{Page: moved, APIBody: api, APIStatus: 200}, wantCapture: "api", wantPct: 42,
			wantNote: Note{Level: slog.LevelWarn, Msg: "page text gave no meter; the fallback capture would fail", Key: "reason"}},
		{name: "neither: LAYOUT_CHANGED naming the page and both causes once",
			capture:   Capture{Page: moved, APIFailures: []string{"net::ERR_FAILED"}},
			wantClass: scrapeerr.LayoutChanged, wantInErr: []string{moved.URL, "net::ERR_FAILED", "no meter in page text"}},
		{name: "sign-in page", capture: Capture{Page: Page{URL: "https://claude.ai/login", Title: "Log in"}, APIBody: api, APIStatus: 200},
			wantClass: scrapeerr.NotLoggedIn, wantInErr: []string{"sign-in page", "https://claude.ai/login"}},
		{name: "challenge markup in any language", capture: Capture{Page: Page{URL: page.URL, Title: "Einen Moment…", Challenge: true}},
			wantClass: scrapeerr.Challenge, wantInErr: []string{"browser check"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			snap, notes, err := Build(tc.capture, testNow, time.UTC)
			if tc.wantClass != "" {
				if got, want := scrapeerr.ClassOf(err), tc.wantClass; got != want {
					t.Fatalf("class = %q, want %q (err %v)", got, want, err)
				}
				for _, w := range tc.wantInErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %q", err, w)
					}
				}
				if n := strings.Count(err.Error(), string(tc.wantClass)); n != 1 {
					t.Errorf("error %q names its class %d times", err, n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := snap.Capture, tc.wantCapture; got != want {
				t.Errorf("capture = %q, want %q", got, want)
			}
			if got, want := snap.Meters[0].PercentUsed, tc.wantPct; got != want {
				t.Errorf("session percent = %g, want %g", got, want)
			}
			if tc.wantText != "" {
				if got, want := snap.Meters[0].ResetsText, tc.wantText; got != want {
					t.Errorf("resetsText = %q, want %q", got, want)
				}
			}
			if got, want := snap.Source, Source; got != want {
				t.Errorf("source = %q, want %q", got, want)
			}
			if got, want := snap.ScrapedAt, testNow; !got.Equal(want) {
				t.Errorf("scrapedAt = %v, want %v", got, want)
			}
			if !slices.ContainsFunc(notes, func(n Note) bool {
				return n.Level == tc.wantNote.Level && n.Msg == tc.wantNote.Msg && n.Key == tc.wantNote.Key &&
					(tc.wantNote.Value == "" || n.Value == tc.wantNote.Value)
			}) {
				t.Errorf("notes = %+v, want one like %+v", notes, tc.wantNote)
			}
		})
	}
}

// The page's own time zone places "Resets Thu 9:00 AM" when the caller
// names none.
func TestBuildUsesThePageTimeZone(t *testing.T) {
	t.Parallel()
	p := Page{URL: "https://claude.ai/settings/usage", Text: "All models\nResets Thu 9:00 AM\n18% used\n", TZ: "America/New_York"}
	snap, _, err := Build(Capture{Page: p}, testNow, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 12, 3, 9, 0, 0, 0, newYork(t))
	if got := snap.Meters[0].ResetsAt; got == nil || !got.Equal(want) {
		t.Errorf("resetsAt = %v, want %v", got, want)
	}
}
