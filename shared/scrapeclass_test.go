package shared

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestScrapeClassWireValuesAndNextSteps(t *testing.T) {
	tests := []struct {
		class    ScrapeClass
		wire     string
		nextStep string
	}{
		{ScrapeOK, "OK", "The scrape failed — see the scraper log"},
		{ScrapeNotLoggedIn, "NOT_LOGGED_IN", "Scraper signed out — run `usage-scraper login`"},
		{ScrapeChallenge, "CHALLENGE", "Claude showed a browser check — run `usage-scraper login` once and pass it in the window"},
		{ScrapeLayoutChanged, "LAYOUT_CHANGED", "The usage page changed and no meter could be read — update the scraper"},
		{ScrapeBrowser, "BROWSER", "Chromium is missing or crashed — install Chrome/Chromium or set --chrome-path"},
		{ScrapeNetwork, "NETWORK", "The laptop could not reach claude.ai — check the connection"},
		{ScrapeUnknown, "UNKNOWN", "The scrape failed — see the scraper log"},
		{ScrapeRateLimited, "RATE_LIMITED", "Claude asked the scraper to slow down — it waits and tries again by itself"},
		{ScrapeNoDisplay, "NO_DISPLAY", "No display: run `usage-scraper login` in the Mac's desktop session, not over SSH"},
		{ScrapeProfileInUse, "PROFILE_IN_USE", "The profile is in use by the running agent — stop it with `launchctl bootout gui/$(id -u)/com.claude-usage.scraper`, run login, then start it again"},
		{ScrapeSnapshotsDropped, "SNAPSHOTS_DROPPED", "The laptop could not store snapshots and some were lost — free disk space and check `usage-scraper status`"},
		{ScrapeOAuthForbidden, "OAUTH_FORBIDDEN", "Anthropic refused this login the usage data — sign in to Claude Code with your Claude subscription (`claude`, then /login), or use --source browser"},
		{ScrapeClass("PROFILE_LOCKED"), "PROFILE_LOCKED", "The scrape failed — see the scraper log"},
	}
	for _, tt := range tests {
		t.Run(tt.wire, func(t *testing.T) {
			if got, want := string(tt.class), tt.wire; got != want {
				t.Errorf("wire value = %q, want %q", got, want)
			}
			if got, want := tt.class.NextStep(), tt.nextStep; got != want {
				t.Errorf("NextStep() = %q, want %q", got, want)
			}
			if !ScrapeClassPattern.MatchString(tt.wire) {
				t.Errorf("%q does not match ScrapeClassPattern", tt.wire)
			}
			// The status body carries the class as a plain JSON string.
			b, err := json.Marshal(ScraperStatus{Category: tt.class})
			if err != nil {
				t.Fatal(err)
			}
			if want := `"category":"` + tt.wire + `"`; !strings.Contains(string(b), want) {
				t.Errorf("encoded status %s lacks %s", b, want)
			}
		})
	}
}
