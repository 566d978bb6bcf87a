//go:build !(js && wasm)

package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/claude-usage/widget/shared"
)

// fakeServer answers the stream, history and windows requests of a
// harness: the stream as a pipe the test writes events into, or an error
// status; the series and windows as set.
type fakeServer struct {
	mu           sync.Mutex
	streamStatus int // 0 or 200: a stream
	streams      []*io.PipeWriter
	streamAt     []time.Duration
	series       map[string]shared.SeriesResponse
	windows      map[string]shared.WindowsResponse
	seriesReqs   []string
}

func (h *harness) serve() *fakeServer {
	fs := &fakeServer{series: map[string]shared.SeriesResponse{}, windows: map[string]shared.WindowsResponse{}}
	h.doer.mu.Lock()
	h.doer.other = fs.do
	h.doer.mu.Unlock()
	return fs
}

func (fs *fakeServer) do(r *http.Request) (*http.Response, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	q := r.URL.Query()
	switch r.URL.Path {
	case shared.PathStream:
		fs.streamAt = append(fs.streamAt, time.Since(t0))
		if fs.streamStatus != 0 && fs.streamStatus != 200 {
			code := shared.CodeStorageUnavailable
			if fs.streamStatus == 404 {
				code = shared.CodeNotFound
			}
			return jsonResponse(fs.streamStatus, shared.ErrorBody{ErrorCode: code, Message: "scripted"}), nil
		}
		pr, pw := io.Pipe()
		fs.streams = append(fs.streams, pw)
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: pr}, nil
	case shared.PathHistory:
		fs.seriesReqs = append(fs.seriesReqs, r.URL.RawQuery)
		if s, ok := fs.series[q.Get("meter")]; ok {
			return jsonResponse(200, s), nil
		}
	case shared.PathWindows:
		if w, ok := fs.windows[q.Get("meter")]; ok {
			return jsonResponse(200, w), nil
		}
	}
	return jsonResponse(404, shared.ErrorBody{ErrorCode: shared.CodeNotFound, Message: "scripted"}), nil
}

func (fs *fakeServer) connects() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.streamAt)
}

// send writes raw bytes into the newest stream; the widget reads them on
// its own goroutine.
func (fs *fakeServer) send(h *harness, raw string) {
	h.t.Helper()
	fs.mu.Lock()
	if len(fs.streams) == 0 {
		fs.mu.Unlock()
		h.t.Fatal("no stream open")
	}
	pw := fs.streams[len(fs.streams)-1]
	fs.mu.Unlock()
	go pw.Write([]byte(raw))
	h.settle()
}

func event(r shared.UsageResponse) string {
	b, _ := json.Marshal(r)
	return "event: usage\ndata: " + string(b) + "\n\n"
}

func (fs *fakeServer) closeStream(h *harness) {
	fs.mu.Lock()
	pw := fs.streams[len(fs.streams)-1]
	fs.mu.Unlock()
	pw.Close()
	h.settle()
}

func TestStreamBringsNewDataWithoutPolling(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, ok(usage(10)))
		fs := h.serve()
		h.load()
		h.settle()
		h.wantText("42% used")
		if got, want := fs.connects(), 1; got != want {
			t.Fatalf("stream connects after the first data = %d, want %d", got, want)
		}
		// The server's first event (sent at connect) opens it.
		fs.send(h, "retry: 5000\n\n"+event(usage(10)))
		h.wantText("· live")
		polls := h.doer.hits()

		newer := usage(0, shared.Meter{ID: "session", Label: "Current session", PercentUsed: 77, ResetsAt: resetAt(2 * time.Hour)})
		fs.send(h, ": ping\n\n"+event(newer))
		h.wantText("77% used")
		h.wantNoText("42% used")
		if _, ok := NewCache(h.store).LoadLast(""); !ok {
			t.Error("the live data was not cached")
		}
		// While the stream is open (its pings keep it so) the refresh
		// does not poll.
		for range 7 {
			h.advance(shared.StreamPing)
			fs.send(h, ": ping\n\n")
		}
		if got := h.doer.hits(); got != polls {
			t.Errorf("polls while the stream is open = %d, want %d", got-polls, 0)
		}

		// The server goes away (off the refresh's beat, so that its tick
		// does not meet the retries): at once a poll, and polling goes on.
		h.advance(10 * time.Second)
		h.doer.script(refused)
		fs.closeStream(h)
		h.wantNoText("· live")
		if got, want := h.doer.hits(), polls+3; got != want {
			t.Errorf("requests after the stream ended = %d, want %d (a poll and its 2 retries); at %v", got, want, h.doer.times())
		}
		h.wantStatus(TextUnavailable)
		h.wantText("Cached", "77% used")
		// No stream attempt while the polls fail: the breaker sees only them.
		h.advance(refresh)
		if got, want := fs.connects(), 1; got != want {
			t.Errorf("stream connects while the server is down = %d, want %d", got, want)
		}
		// Back: the poll succeeds and the stream comes back.
		h.doer.script(ok(newer))
		h.advance(refresh)
		h.wantStatus("")
		if got, want := fs.connects(), 2; got != want {
			t.Errorf("stream connects after the server came back = %d, want %d", got, want)
		}
	})
}

// A failed connect counts in the breaker like a failed fetch, and the
// reconnects back off (5 s, 10 s, 20 s, 40 s, 80 s) and wait for a good
// poll each, so the polls carry the data and the breaker stays closed.
func TestStreamConnectFailuresBackOffThroughTheBreaker(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, ok(usage(10)))
		fs := h.serve()
		fs.streamStatus = 503
		h.load()
		h.settle()
		h.wantStatus("")
		if got, want := h.br.Failures(), 1; got != want {
			t.Errorf("breaker failures after a refused stream = %d, want %d", got, want)
		}
		for range 6 {
			h.advance(refresh)
			if got := h.br.Failures(); got > 1 {
				t.Fatalf("at t0+%v: breaker failures = %d, want at most 1", time.Since(t0), got)
			}
		}
		fs.mu.Lock()
		got := fmt.Sprint(fs.streamAt)
		fs.mu.Unlock()
		s := time.Second
		if want := fmt.Sprint([]time.Duration{0, 60 * s, 120 * s, 180 * s, 240 * s, 320 * s}); got != want {
			t.Errorf("stream attempts at %s, want %s", got, want)
		}
		if got, want := h.br.State(), shared.StateClosed; got != want {
			t.Errorf("breaker = %v, want %v", got, want)
		}
		h.wantStatus("")
		h.wantText("42% used")
	})
}

// A server without the stream (404) is asked once; the polls go on.
func TestNoStreamOnTheServerKeepsPolling(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, ok(usage(10)))
		fs := h.serve()
		fs.streamStatus = 404
		h.load()
		h.settle()
		h.advance(3 * refresh)
		if got, want := fs.connects(), 1; got != want {
			t.Errorf("stream connects = %d, want %d", got, want)
		}
		if got, want := h.doer.hits(), 4; got != want {
			t.Errorf("polls = %d, want %d", got, want)
		}
		if got, want := h.br.Failures(), 0; got != want {
			t.Errorf("breaker failures = %d, want %d", got, want)
		}
	})
}

// Hiding the page ends the stream; showing it fetches and reconnects.
func TestStreamStopsWhileHidden(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, ok(usage(10)))
		fs := h.serve()
		h.load()
		h.settle()
		fs.send(h, event(usage(10)))
		h.wantText("· live")
		h.page.onChange(false)
		h.settle()
		h.wantNoText("· live")
		h.advance(2 * refresh)
		h.page.onChange(true)
		h.settle()
		if got, want := fs.connects(), 2; got != want {
			t.Errorf("stream connects = %d, want %d", got, want)
		}
	})
}

func TestPaceBandAndProjection(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		// Session: 3 h of 5 gone (60 % expected), 90 % used: 30 ahead, 30 %
		// an hour, so 100 % at t0+20 min, 1 h 40 min before the reset.
		// Weekly: 3.5 d of 7 gone, 20 % used: 30 under, lasts.
		h := newHarness(t, ok(usage(0,
			shared.Meter{ID: "session", Label: "Current session", PercentUsed: 90, ResetsAt: resetAt(2 * time.Hour)},
			shared.Meter{ID: "weekly_all", Label: "All models", PercentUsed: 20, ResetsAt: resetAt(84 * time.Hour)},
			shared.Meter{ID: "weekly_opus", Label: "Opus only", PercentUsed: 52, ResetsAt: resetAt(84 * time.Hour)},
			shared.Meter{ID: "other", Label: "Other", PercentUsed: 10},
		)))
		h.load()
		h.settle()
		h.wantText("30 points ahead of pace", "Runs out at 00:20 — 1 h 40 min before reset", "(in 20 min)",
			"30 points under pace", "Lasts until reset", "On pace", "Resets in 2 h 0 min (02:00)", "Resets Tue 12:00 (in 3 d 12 h)")
		page := h.html()
		var lefts []string
		for _, tag := range regexp.MustCompile(`<div[^>]*class="pace-tick"[^>]*>`).FindAllString(page, -1) {
			if m := regexp.MustCompile(`left:([0-9.]+)%`).FindStringSubmatch(tag); m != nil {
				lefts = append(lefts, m[1])
			}
		}
		if got, want := strings.Join(lefts, " "), "60 50 50"; got != want {
			t.Errorf("pace ticks at %s, want %s (none for a meter without a window)", got, want)
		}
		// The countdown is live, the projection fixed.
		h.advance(5 * time.Minute)
		h.wantText("Runs out at 00:20 — 1 h 40 min before reset", "(in 15 min)")
	})
}

// The widget draws the server's pace when it sends one and computes the
// same with shared.ComputePace when it does not (an older server, or
// cached data): both pages are identical.
func TestPaceFromServerEqualsComputed(t *testing.T) {
	meters := []shared.Meter{
		{ID: "session", Label: "Current session", PercentUsed: 90, ResetsAt: resetAt(2 * time.Hour)},
		{ID: "weekly_all", Label: "All models", PercentUsed: 20, ResetsAt: resetAt(84 * time.Hour)},
		{ID: "weekly_sonnet", Label: "Sonnet", PercentUsed: 1, ResetsAt: resetAt(167 * time.Hour)},
		{ID: "weekly_opus", Label: "Opus", PercentUsed: 0, ResetsAt: resetAt(time.Hour)},
	}
	render := func(t *testing.T, ms []shared.Meter) string {
		var page string
		inBubble(t, func(t *testing.T) {
			h := newHarness(t, ok(usage(0, ms...)))
			h.load()
			h.settle()
			page = h.html()
		})
		return page
	}
	at := t0
	withPace := shared.WithPace(meters, at)
	for i, m := range meters {
		p, ok := MeterPace(m, at)
		if !ok || withPace[i].Pace == nil {
			t.Fatalf("%s: no pace", m.ID)
		}
		gotJSON, _ := json.Marshal(p)
		wantJSON, _ := json.Marshal(*withPace[i].Pace)
		if got, want := string(gotJSON), string(wantJSON); got != want {
			t.Errorf("%s: widget pace %s, server pace %s", m.ID, got, want)
		}
	}
	var computed, served string
	t.Run("computed", func(t *testing.T) { computed = render(t, meters) })
	t.Run("served", func(t *testing.T) { served = render(t, withPace) })
	t.Cleanup(func() {
		// go-app writes attributes in map order: compare the texts and
		// the pace ticks' positions.
		computed, served = normalize(computed), normalize(served)
		if computed == "" || computed != served {
			t.Errorf("pages differ:\ncomputed %s\nserved   %s", computed, served)
		}
	})
}

func TestUpdatedAgeSourceAndDrift(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		r := usage(12)
		r.Capture = shared.CaptureOAuth
		r.Drift = map[string]shared.DriftPair{"session": {API: 42, DOM: 47}}
		h := newHarness(t, ok(r))
		h.load()
		h.settle()
		h.wantText("Updated 12 s ago", "Source: oauth", shared.DriftText)
		h.advance(3 * time.Second)
		h.wantText("Updated 15 s ago")
		r = usage(0)
		r.Capture = shared.CaptureDOM
		h.doer.script(ok(r))
		h.advance(refresh)
		h.wantText("Source: browser")
		h.wantNoText(shared.DriftText)
	})
}

func TestSparklineAndHistoryView(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		h := newHarness(t, ok(usage(0, shared.Meter{ID: "session", Label: "Current session", PercentUsed: 40, ResetsAt: resetAt(2 * time.Hour)})))
		fs := h.serve()
		start := t0.Add(-3 * time.Hour)
		fs.series["session"] = shared.SeriesResponse{Meter: "session", Points: []shared.SeriesPoint{
			{At: start, PercentUsed: 5}, {At: start.Add(time.Hour), PercentUsed: 20}, {At: start.Add(2 * time.Hour), PercentUsed: 30}}}
		fs.windows["session"] = shared.WindowsResponse{Meter: "session", Windows: []shared.Window{
			{Meter: "session", Start: start.Add(-5 * time.Hour), ResetsAt: start, PeakPercent: 100, FinalPercent: 100, HitLimit: true, Samples: 40},
			{Meter: "session", Start: start.Add(-10 * time.Hour), ResetsAt: start.Add(-5 * time.Hour), PeakPercent: 61, FinalPercent: 60, Samples: 30},
		}}
		h.load()
		h.settle()
		fs.mu.Lock()
		q := strings.Join(fs.seriesReqs, "|")
		fs.mu.Unlock()
		if want := "meter=session&points=60&since=" + strings.ReplaceAll(start.Format(time.RFC3339), ":", "%3A"); q != want {
			t.Errorf("sparkline request %q, want %q", q, want)
		}
		page := h.html()
		spark := regexp.MustCompile(` d="([^"]+)"`).FindStringSubmatch(regexp.MustCompile(`<path [^>]*class="spark-line"[^>]*>`).FindString(page))
		if spark == nil {
			t.Fatalf("no sparkline:\n%s", page)
		}
		if got, want := strings.Count(spark[1], "L")+1, 4; got != want {
			t.Errorf("sparkline vertices = %d, want %d (3 from the server + the latest)", got, want)
		}
		h.wantText("Current session this window: 40% now, highest 40%")

		h.on(func(ctx app.Context) { h.w.openHistory(ctx, "session") })
		h.wantText("Current session — history", "Past windows of Current session", "100%", "61%", "hit", "not hit")
		page = h.html()
		// The host's HTML writes a true attribute bare: aria-pressed.
		if r0 := tagOf(page, "range-0"); !strings.Contains(r0, "aria-pressed") || strings.Contains(r0, `aria-pressed="false"`) ||
			!strings.Contains(tagOf(page, "range-1"), `aria-pressed="false"`) {
			t.Errorf("the session does not open on 24 h:\n%s", page)
		}
		line := regexp.MustCompile(` d="([^"]+)"`).FindStringSubmatch(tagOf(page, "history-line"))
		if line == nil {
			t.Fatalf("no history line:\n%s", page)
		}
		if got, want := strings.Count(line[1], "L")+1, 3; got != want {
			t.Errorf("history vertices = %d, want %d", got, want)
		}
		if got, want := strings.Count(page, `class="boundary"`), 3; got != want {
			t.Errorf("window boundaries drawn = %d, want %d", got, want)
		}
		if !strings.Contains(page, `class="limit"`) {
			t.Error("no limit line")
		}
		h.wantText("1 of 2 past windows in this span hit the limit")

		h.on(func(ctx app.Context) { h.w.setHistoryRange(3) })
		fs.mu.Lock()
		last := fs.seriesReqs[len(fs.seriesReqs)-1]
		fs.mu.Unlock()
		if !strings.Contains(last, "points=240") || !strings.Contains(last, "until=") {
			t.Errorf("90 d request %q", last)
		}
		h.on(func(ctx app.Context) { h.w.closeHistory(ctx) })
		h.wantNoText("Current session — history")
	})
}

// normalize reduces a page to its text and its style values, which go-app
// writes in a stable order, unlike the attributes.
func normalize(page string) string {
	styles := regexp.MustCompile(`style="[^"]*"`).FindAllString(page, -1)
	text := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(page, " ")
	return strings.Join(strings.Fields(text), " ") + "\n" + strings.Join(styles, " ")
}

// tagOf is the start tag of the element with the id.
func tagOf(page, id string) string {
	return regexp.MustCompile(`<[a-z]+ [^>]*id="` + regexp.QuoteMeta(id) + `"[^>]*>`).FindString(page)
}
