package parse

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
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

// A usage request answered 429 is RATE_LIMITED with its wait, whatever
// the page around it looks like, unless the page still shows its meters.
func TestBuildRateLimited(t *testing.T) {
	t.Parallel()
	login := Page{URL: "https://claude.ai/login", Title: "Log in", Text: "Log in to Claude"}
	blank := Page{URL: "https://claude.ai/settings/usage", Title: "Settings - Claude", Text: "Something went wrong"}
	meters := Page{URL: "https://claude.ai/settings/usage", Title: "Settings - Claude", Text: "Current session\nResets in 1 hr\n50% used\n"}
	for _, tc := range []struct {
		name      string
		capture   Capture
		wantClass scrapeerr.Class
		wantWait  time.Duration
	}{
		{"429 with Retry-After on an empty page", Capture{Page: blank, APIStatus: 429, APIFailures: []string{"HTTP 429"}, APIRetryAfter: "900"},
			scrapeerr.RateLimited, 15 * time.Minute},
		{"429 without Retry-After waits the minimum", Capture{Page: blank, APIFailures: []string{"HTTP 429"}},
			scrapeerr.RateLimited, scrapeerr.MinRateLimitWait},
		{"short Retry-After waits the minimum", Capture{Page: blank, APIStatus: 429, APIRetryAfter: "30"},
			scrapeerr.RateLimited, scrapeerr.MinRateLimitWait},
		{"429 on a sign-in prompt is not NOT_LOGGED_IN", Capture{Page: login, APIStatus: 429, APIRetryAfter: "600"},
			scrapeerr.RateLimited, 10 * time.Minute},
		{"429 but the page shows its meters", Capture{Page: meters, APIStatus: 429}, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			snap, _, err := Build(tc.capture, testNow, time.UTC)
			if tc.wantClass == "" {
				if err != nil {
					t.Fatalf("Build: %v", err)
				}
				if got, want := snap.Capture, "dom"; got != want {
					t.Errorf("capture = %q, want %q", got, want)
				}
				return
			}
			if got, want := scrapeerr.ClassOf(err), tc.wantClass; got != want {
				t.Fatalf("class = %q, want %q (err %v)", got, want, err)
			}
			if got, want := scrapeerr.WaitOf(err), tc.wantWait; got != want {
				t.Errorf("wait = %s, want %s", got, want)
			}
		})
	}
}

// Both captures of one scrape are compared; more than DriftPoints on a
// meter travels in the snapshot.
func TestBuildDrift(t *testing.T) {
	t.Parallel()
	page := Page{URL: "https://claude.ai/settings/usage", Title: "Settings - Claude",
		Text: "Current session\nResets in 1 hr\n50% used\nAll models\nResets Thu 9:00 AM\n19% used\n"}
	api := []byte(`{"five_hour":{"utilization":42,"resets_at":null},"seven_day":{"utilization":18,"resets_at":null}}`)
	snap, _, err := Build(Capture{Page: page, APIBody: api, APIStatus: 200}, testNow, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(snap.Drift), 1; got != want {
		t.Fatalf("drift = %v, want one meter", snap.Drift)
	}
	if got, want := snap.Drift["session"], (shared.DriftPair{API: 42, DOM: 50}); got != want {
		t.Errorf("drift[session] = %+v, want %+v", got, want)
	}
	s := snap
	s.Normalize()
	if err := s.Validate(testNow); err != nil {
		t.Errorf("snapshot with drift fails validation: %v", err)
	}
}

func TestDriftOf(t *testing.T) {
	t.Parallel()
	mk := func(pcts ...float64) shared.Snapshot {
		var s shared.Snapshot
		for i, p := range pcts {
			s.Meters = append(s.Meters, shared.Meter{ID: []string{"session", "weekly_all"}[i], PercentUsed: p})
		}
		return s
	}
	for _, tc := range []struct {
		name string
		a, b shared.Snapshot
		want int
	}{
		{"equal", mk(10, 20), mk(10, 20), 0},
		{"exactly two points is not drift", mk(10, 20), mk(12, 18), 0},
		{"just over two points", mk(10, 20), mk(12.5, 20), 1},
		{"meter only in one", mk(10, 20), mk(10), 0},
		{"both meters", mk(0, 100), mk(50, 0), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := len(DriftOf(tc.a, tc.b)), tc.want; got != want {
				t.Errorf("len(DriftOf) = %d, want %d", got, want)
			}
		})
	}
}
