package parse

import (
	"errors"
	"strings"
	"testing"

	"github.com/claude-usage/widget/scraper/scrapeerr"
)

func TestMerge(t *testing.T) {
	const (
		apiBody = `{"five_hour":{"utilization":42,"resets_at":"2026-11-28T16:00:00Z"},"seven_day":{"utilization":18,"resets_at":null}}`
		domText = "Current session\nResets in 2 hr 10 min\n44% used\nAll models\nResets Thu 9:00 AM\n18% used\nOpus only\n1% used\n"
	)
	api, apiOK := ParseAPI([]byte(apiBody), testNow)
	dom, domOK := ParseDOM(domText, testNow, newYork(t))
	if apiOK != nil || domOK != nil {
		t.Fatalf("inputs do not parse: %v, %v", apiOK, domOK)
	}
	empty, emptyErr := ParseDOM("Nothing here", testNow, newYork(t))
	notCaptured := errors.New("browser: no usage JSON captured")

	tests := []struct {
		name        string
		apiErr      error
		dom         bool // false: the page text gave nothing
		wantCapture string
		wantPct     float64 // of the session meter
		wantText    string  // resetsText of the session meter
		wantClass   scrapeerr.Class
		wantMsg     []string
	}{
		{name: "both: the JSON wins, the page's reset wording is kept", dom: true, wantCapture: "api", wantPct: 42, wantText: "Resets in 2 hr 10 min"},
		{name: "JSON only", wantCapture: "api", wantPct: 42},
		{name: "no JSON: the page text", apiErr: notCaptured, dom: true, wantCapture: "dom", wantPct: 44, wantText: "Resets in 2 hr 10 min"},
		{name: "neither", apiErr: notCaptured, wantClass: scrapeerr.LayoutChanged,
			wantMsg: []string{"no usage JSON captured", "no meter in page text"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, dErr := dom, error(nil)
			if !tt.dom {
				d, dErr = empty, emptyErr
			}
			a := api
			if tt.apiErr != nil {
				a = empty
				a.Capture = "api"
			}
			got, err := Merge(a, tt.apiErr, d, dErr)
			if tt.wantClass != "" {
				if got, want := classOf(err), tt.wantClass; got != want {
					t.Fatalf("class = %q, want %q (err %v)", got, want, err)
				}
				for _, w := range tt.wantMsg {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %q", err, w)
					}
				}
				if n := strings.Count(err.Error(), string(scrapeerr.LayoutChanged)); n != 1 {
					t.Errorf("error %q repeats its class %d times", err, n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Merge: %v", err)
			}
			if got, want := got.Capture, tt.wantCapture; got != want {
				t.Errorf("capture = %q, want %q", got, want)
			}
			m, ok := got.Meter("session")
			if !ok {
				t.Fatalf("no session meter in %+v", got.Meters)
			}
			if got, want := m.PercentUsed, tt.wantPct; got != want {
				t.Errorf("session percent = %g, want %g", got, want)
			}
			if got, want := m.ResetsText, tt.wantText; got != want {
				t.Errorf("session resetsText = %q, want %q", got, want)
			}
			if _, ok := got.Meter("weekly_opus"); ok && tt.wantCapture == "api" {
				t.Error("a meter only the page has was added to the JSON capture")
			}
		})
	}
	// Merge fills in the copy, never the caller's snapshot.
	if m, _ := api.Meter("session"); m.ResetsText != "" {
		t.Errorf("Merge changed its input: resetsText = %q", m.ResetsText)
	}
}
