package source

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

// fixed answers every scrape with err, or a snapshot of capture.
type fixed struct {
	capture string
	pct     float64
	err     error
	calls   int
}

func (f *fixed) Scrape(context.Context, string) (shared.Snapshot, error) {
	f.calls++
	if f.err != nil {
		return shared.Snapshot{}, f.err
	}
	return shared.Snapshot{Capture: f.capture, Meters: []shared.Meter{{ID: "session", Label: "Current session", PercentUsed: f.pct}}}, nil
}

func tracker(t *testing.T) *upload.Tracker {
	tr, err := upload.OpenTracker("", nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestChain(t *testing.T) {
	expired := scrapeerr.New(scrapeerr.NotLoggedIn, nil, "oauth: expired").WithStep("run claude once to refresh its login")
	noChrome := scrapeerr.New(scrapeerr.Browser, nil, "browser: no Chromium")
	absent := func(context.Context) bool { return false }
	for _, tc := range []struct {
		name        string
		oauth       *fixed
		present     func(context.Context) bool
		browser     *fixed
		wantCapture string
		wantClass   scrapeerr.Class
		wantNote    string
		wantCalls   [2]int
		wantLast    string
	}{
		{"oauth answers", &fixed{capture: "oauth"}, nil, &fixed{capture: "api"}, "oauth", "", "", [2]int{1, 0}, OAuth},
		{"oauth fails, browser answers and it is noted", &fixed{err: expired}, nil, &fixed{capture: "api"}, "api", "",
			"fell back to browser: oauth NOT_LOGGED_IN: run claude once to refresh its login", [2]int{1, 1}, Browser},
		{"no login: browser, no note", &fixed{capture: "oauth"}, absent, &fixed{capture: "api"}, "api", "", "", [2]int{0, 1}, Browser},
		{"both fail: the browser's class, naming oauth's failure", &fixed{err: expired}, nil, &fixed{err: noChrome}, "", scrapeerr.Browser, "", [2]int{1, 1}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := tracker(t)
			c := &Chain{Tracker: tr, Sources: []Source{{Name: OAuth, Scraper: tc.oauth, Present: tc.present}, {Name: Browser, Scraper: tc.browser}}}
			snap, err := c.Scrape(t.Context(), "https://claude.ai/settings/usage")
			if tc.wantClass != "" {
				if got := scrapeerr.ClassOf(err); got != tc.wantClass {
					t.Fatalf("class = %q, want %q (err %v)", got, tc.wantClass, err)
				}
				if !strings.Contains(err.Error(), "every source failed (oauth NOT_LOGGED_IN") {
					t.Errorf("error %q does not name oauth's failure", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got := snap.Capture; got != tc.wantCapture {
				t.Errorf("capture = %q, want %q", got, tc.wantCapture)
			}
			if got := c.Note(); got != tc.wantNote {
				t.Errorf("note = %q, want %q", got, tc.wantNote)
			}
			if got := [2]int{tc.oauth.calls, tc.browser.calls}; got != tc.wantCalls {
				t.Errorf("calls = %v, want %v", got, tc.wantCalls)
			}
			st := tr.State()
			if got := st.LastSource; got != tc.wantLast {
				t.Errorf("last source = %q, want %q", got, tc.wantLast)
			}
			if tc.oauth.err != nil && tc.present == nil {
				r := st.Sources[OAuth]
				if r == nil || r.LastError == nil || r.LastError.Category != string(scrapeerr.NotLoggedIn) {
					t.Errorf("oauth record = %+v, want its NOT_LOGGED_IN", r)
				}
			}
		})
	}
}

func TestChainNothingSetUp(t *testing.T) {
	c := &Chain{Sources: []Source{{Name: OAuth, Scraper: &fixed{}, Present: func(context.Context) bool { return false }}}}
	_, err := c.Scrape(t.Context(), "")
	if got, want := scrapeerr.ClassOf(err), scrapeerr.NotLoggedIn; got != want {
		t.Fatalf("class = %q, want %q", got, want)
	}
}

// Shutdown is not a source's failure: no fallback, nothing recorded.
func TestChainCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	tr := tracker(t)
	b := &fixed{capture: "api"}
	c := &Chain{Tracker: tr, Sources: []Source{{Name: OAuth, Scraper: &fixed{err: errors.New("canceled")}}, {Name: Browser, Scraper: b}}}
	if _, err := c.Scrape(ctx, ""); err == nil {
		t.Fatal("canceled scrape succeeded")
	}
	if b.calls != 0 || len(tr.State().Sources) != 0 {
		t.Errorf("after cancel: browser calls %d, records %v", b.calls, tr.State().Sources)
	}
}

// Two sources in one cycle: the drift between them is in the snapshot,
// which stays the first source's.
func TestChainCrossCheck(t *testing.T) {
	for _, tc := range []struct {
		name      string
		browser   *fixed
		wantDrift map[string]shared.DriftPair
	}{
		{"disagree", &fixed{capture: "api", pct: 50}, map[string]shared.DriftPair{"session": {API: 42, DOM: 50}}},
		{"agree within two points", &fixed{capture: "api", pct: 44}, nil},
		{"browser fails: snapshot stands", &fixed{err: scrapeerr.New(scrapeerr.Browser, nil, "no Chromium")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := tracker(t)
			o := &fixed{capture: "oauth", pct: 42}
			c := &Chain{Tracker: tr, CrossCheck: true, Sources: []Source{{Name: OAuth, Scraper: o}, {Name: Browser, Scraper: tc.browser}}}
			snap, err := c.Scrape(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := snap.Capture, "oauth"; got != want {
				t.Errorf("capture = %q, want %q", got, want)
			}
			if got, want := len(snap.Drift), len(tc.wantDrift); got != want {
				t.Fatalf("drift = %v, want %v", snap.Drift, tc.wantDrift)
			}
			for id, d := range tc.wantDrift {
				if snap.Drift[id] != d {
					t.Errorf("drift[%s] = %+v, want %+v", id, snap.Drift[id], d)
				}
			}
			if got, want := tc.browser.calls, 1; got != want {
				t.Errorf("browser calls = %d, want %d", got, want)
			}
			if got, want := tr.State().LastSource, OAuth; got != want {
				t.Errorf("last source = %q, want %q", got, want)
			}
		})
	}
}
