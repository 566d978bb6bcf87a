//go:build !js

package widget_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	widget "github.com/claude-usage/widget/app"
	"github.com/claude-usage/widget/shared"
)

// The live-update, pace and history scenarios of the widget against the
// real server: GET …/stream, …/history and …/windows.

const liveJS = `(document.getElementById("live") || {}).textContent || ""`

// getJSON reads an API answer with the read token, as the widget does.
func (s *server) getJSON(path string, q url.Values, out any) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url()+path+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET %s?%s = %d: %s", path, q.Encode(), resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		s.t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}

func (tb *tab) waitLive(timeout time.Duration) {
	tb.t.Helper()
	tb.waitFor("live stream", liveJS, timeout, func(s string) bool { return strings.Contains(s, "live") })
}

func (tb *tab) waitText(want string, timeout time.Duration) time.Duration {
	tb.t.Helper()
	start := time.Now()
	tb.waitFor(want, `document.body ? document.body.innerText : ""`, timeout,
		func(s string) bool { return strings.Contains(s, want) })
	return time.Since(start)
}

func session(pct float64, resetsIn time.Duration) meter {
	r := time.Now().UTC().Add(resetsIn)
	return meter{"session", "Current session", pct, &r}
}

func TestLivePostAppearsWithinOneSecond(t *testing.T) {
	t.Parallel()
	// A refresh of 10 min: only the stream can bring the new data in time.
	s := startServer(t, "--widget-refresh", "10m")
	s.post(time.Minute)
	tb := openWithData(t, s)
	tb.waitLive(10 * time.Second)
	polls := tb.apiRequests()
	for _, want := range []string{"Updated ", " ago", "Source: browser"} {
		if page := tb.text(); !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}

	var worst time.Duration
	for i, pct := range []float64{51, 57, 63} {
		posted := time.Now()
		s.post(0, session(pct, 2*time.Hour), meter{"weekly_all", "All models", 78, nil}, meter{"weekly_opus", "Opus only", 93, nil})
		tb.waitText(fmt.Sprintf("%.0f%% used", pct), 5*time.Second)
		took := time.Since(posted)
		t.Logf("POST %d to the meter changing: %v", i+1, took.Round(time.Millisecond))
		worst = max(worst, took)
	}
	if worst > time.Second {
		t.Errorf("slowest POST to page: %v, want ≤ 1 s", worst)
	}
	if got := tb.apiRequests(); got != polls {
		t.Errorf("%d polls while the stream was open, want 0 (the page was updated by the stream)", got-polls)
	}
	if got := tb.eval(`String(performance.getEntriesByType("navigation").length)`); got != "1" {
		t.Errorf("navigations = %s, want 1 (no reload)", got)
	}
}

func TestStreamKilledFallsBackToPollingAndRecovers(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	s.post(time.Minute)
	tb := openWithData(t, s)
	tb.waitLive(10 * time.Second)

	// The server goes away mid-stream: the widget polls, and says so.
	s.stop()
	tb.waitFor("not live", liveJS, 5*time.Second, func(v string) bool { return !strings.Contains(v, "live") })
	tb.waitStatus(textUnavailable, 15*time.Second)
	if page := tb.text(); !strings.Contains(page, "Cached") || !strings.Contains(page, "42% used") {
		t.Errorf("the last data is not shown as cached:\n%s", page)
	}
	tb.shot("stream-down")

	// Back on the same port: the polls see it, then the stream reconnects
	// and carries a POST again.
	s.start()
	tb.waitStatus("", 20*time.Second)
	tb.waitLive(30 * time.Second)
	posted := time.Now()
	s.post(0, session(66, 2*time.Hour))
	tb.waitText("66% used", 5*time.Second)
	if took := time.Since(posted); took > time.Second {
		t.Errorf("POST to page after the reconnect: %v, want ≤ 1 s", took)
	}
	tb.mu.Lock()
	logged := strings.Join(tb.logs, "\n")
	tb.mu.Unlock()
	for _, want := range []string{`"msg":"stream open"`, `"msg":"stream ended"`, `"msg":"live update"`} {
		if !strings.Contains(logged, want) {
			t.Errorf("console log lacks %s", want)
		}
	}
}

// A known series: the session's window started 3 h ago (it resets in
// 2 h); at 90 % the pace is 60 % expected, 30 ahead, 30 % an hour, so it
// runs out 20 min after the snapshot, 1 h 40 min before the reset. The
// browser runs in another time zone than the machine.
func TestProjectionAndPaceTick(t *testing.T) {
	t.Parallel()
	const zone = "Asia/Kolkata" // UTC+5:30: a half-hour offset shows a wrong zone at once
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t)
	scraped := time.Now().UTC().Truncate(time.Second)
	resets := scraped.Add(2 * time.Hour)
	body, _ := json.Marshal(map[string]any{
		"account": "default", "scrapedAt": scraped.Format(time.RFC3339), "capture": "oauth",
		"meters": []meter{{"session", "Current session", 90, &resets}},
	})
	s.postJSON(shared.PathUsage, body, http.StatusCreated)

	tb := newTab(t, s.url())
	if _, err := chromedp.Call(tb.ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: zone}); err != nil {
		t.Fatal(err)
	}
	tb.open("/#token=" + readToken)
	tb.waitMeters(1, firstLoad)
	want := "Runs out at " + scraped.Add(20*time.Minute).In(loc).Format("15:04") + " — 1 h 40 min before reset"
	tb.waitText(want, 5*time.Second)
	page := tb.text()
	for _, w := range []string{"30 points ahead of pace", "Source: oauth", "(" + resets.In(loc).Format("15:04") + ")"} {
		if !strings.Contains(page, w) {
			t.Errorf("page lacks %q:\n%s", w, page)
		}
	}
	if got, want := tb.eval(`document.querySelector("li[data-meter=session] .pace-tick").style.left`), "60%"; got != want {
		t.Errorf("pace tick at %s, want %s", got, want)
	}
	// The tick sits at 60 % of the bar's width on screen too.
	if got := tb.eval(`(() => { const b = document.querySelector("li[data-meter=session] .meter-bar").getBoundingClientRect();
		const k = document.querySelector("li[data-meter=session] .pace-tick").getBoundingClientRect();
		return String(Math.round((k.left + k.width / 2 - b.left) / b.width * 100)); })()`); got != "60" {
		t.Errorf("pace tick drawn at %s %% of the bar, want 60", got)
	}
	// The server's pace and the widget's texts agree.
	var latest shared.UsageResponse
	s.getJSON(shared.PathUsage, url.Values{}, &latest)
	if len(latest.Meters) != 1 || latest.Meters[0].Pace == nil {
		t.Fatalf("GET latest has no pace: %+v", latest.Meters)
	}
	if got, want := widget.BandText(*latest.Meters[0].Pace), "30 points ahead of pace"; got != want {
		t.Errorf("server's pace band in words = %q, want %q", got, want)
	}
}

// The history view draws the stored series: the path's points are the
// API's answer for the same span through the chart's geometry, and the
// windows table lists the API's windows.
func TestHistoryViewRendersStoredSeries(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	now := time.Now().UTC()
	// A finished window that hit the limit (11 h to 6 h ago), then the
	// current one (3 h ago to 2 h ahead) climbing.
	oldReset := now.Add(-6 * time.Hour)
	for i, pct := range []float64{20, 60, 100} {
		s.post(time.Duration(10-i)*time.Hour, meter{"session", "Current session", pct, &oldReset})
	}
	for i, pct := range []float64{5, 12, 20, 31, 40, 47} {
		s.post(time.Duration(170-30*i)*time.Minute, session(pct, 2*time.Hour))
	}
	tb := newTab(t, s.url())
	tb.open("/#token=" + readToken)
	tb.waitMeters(1, firstLoad)
	tb.waitFor("sparkline", `String(document.querySelectorAll("li[data-meter=session] svg.spark").length)`, 10*time.Second,
		func(v string) bool { return v == "1" })

	tb.do(chromedp.Click(chromedp.ID("open-session")))
	tb.waitFor("history line", `(document.getElementById("history-line") || {getAttribute: () => ""}).getAttribute("d")`,
		10*time.Second, func(v string) bool { return v != "" })
	if got := tb.eval(`document.activeElement ? document.activeElement.id : ""`); got != "history-close" {
		t.Errorf("focus after opening the history is on %q, want history-close", got)
	}
	since, err := time.Parse(time.RFC3339, tb.eval(`document.getElementById("history-chart").dataset.since`))
	if err != nil {
		t.Fatal(err)
	}
	until, err := time.Parse(time.RFC3339, tb.eval(`document.getElementById("history-chart").dataset.until`))
	if err != nil {
		t.Fatal(err)
	}
	var series shared.SeriesResponse
	s.getJSON(shared.PathHistory, url.Values{"meter": {"session"}, "since": {since.Format(time.RFC3339)},
		"until": {until.Format(time.RFC3339)}, "points": {fmt.Sprint(widget.HistoryPoints)}}, &series)
	if len(series.Points) < 5 {
		t.Fatalf("the API has %d points for the day, want at least 5: %+v", len(series.Points), series)
	}
	p := widget.HistoryChart
	p.Since, p.Until = since, until
	if got, want := tb.eval(`document.getElementById("history-line").getAttribute("d")`), p.LinePath(series.Points); got != want {
		t.Errorf("history path\n got %s\nwant %s (the API's %d points)", got, want, len(series.Points))
	}
	if got := tb.eval(`String(document.querySelectorAll("#history-chart line.limit").length)`); got != "1" {
		t.Errorf("limit lines = %s, want 1", got)
	}
	if got := tb.eval(`String(document.querySelectorAll("#history-chart line.boundary").length)`); got == "0" {
		t.Error("no window boundary drawn")
	}

	var windows shared.WindowsResponse
	s.getJSON(shared.PathWindows, url.Values{"meter": {"session"}, "limit": {fmt.Sprint(widget.HistoryWindows)}}, &windows)
	if len(windows.Windows) == 0 {
		t.Fatal("the API has no past window")
	}
	tb.waitFor("windows table", `String(document.querySelectorAll("#windows tr.window").length)`, 5*time.Second,
		func(v string) bool { return v == fmt.Sprint(len(windows.Windows)) })
	firstRow := tb.eval(`document.querySelector("#windows tr.window").innerText`)
	w0 := windows.Windows[0]
	wantHit := "not hit"
	if w0.HitLimit {
		wantHit = "hit"
	}
	if !strings.Contains(firstRow, widget.PercentText(w0.PeakPercent)) || !strings.HasSuffix(strings.TrimSpace(firstRow), wantHit) {
		t.Errorf("first window row %q, want peak %s and %q", firstRow, widget.PercentText(w0.PeakPercent), wantHit)
	}

	// Other spans by keyboard: Tab to the 7 d button, Enter.
	tb.do(chromedp.Focus(chromedp.ID("range-1")), chromedp.KeyEvent("\r"))
	tb.waitFor("7 d pressed", `document.getElementById("range-1").getAttribute("aria-pressed")`, 5*time.Second,
		func(v string) bool { return v == "true" })

	// Light and dark at 320 px, history open.
	for _, dark := range []bool{false, true} {
		tb.emulate(320, dark)
		time.Sleep(200 * time.Millisecond)
		if got := tb.eval(`String(document.documentElement.scrollWidth)`); got != "320" {
			t.Errorf("dark=%v: page is %s px wide at a 320 px viewport", dark, got)
		}
		name := "history-320-light"
		if dark {
			name = "history-320-dark"
		}
		tb.do(chromedp.ScrollIntoView(chromedp.ID("history")))
		tb.shot(name)
	}
	tb.do(chromedp.KeyEvent("\x1b")) // Escape closes it
	tb.waitFor("history closed", `String(document.getElementById("history").hidden)`, 5*time.Second,
		func(v string) bool { return v == "true" })
	tb.emulate(320, true)
	tb.do(chromedp.ScrollIntoView(chromedp.ID("meters")))
	tb.shot("meters-320-dark")
}
