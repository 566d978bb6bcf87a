package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// weeklySnap is a snapshot with a session meter and a weekly_all meter
// that resets at resets.
func weeklySnap(at time.Time, pct float64, resets time.Time) string {
	return fmt.Sprintf(`{"account":"default","scrapedAt":%q,"source":"test","capture":"api",
"meters":[{"id":"weekly_all","label":"All models","percentUsed":%g,"resetsAt":%q},
{"id":"session","label":"Current session","percentUsed":%g}]}`,
		at.UTC().Format(time.RFC3339), pct, resets.UTC().Format(time.RFC3339), pct/2)
}

// atDir puts the server on a real file store in dir (opened here, closed
// at cleanup), so that a test can stop it and start another on the same
// data.
func atDir(dir string, opts store.Options) envOption {
	return func(e *env, _ *Config) {
		opts.Dir = dir
		opts.Logger = slog.New(slog.DiscardHandler)
		st, err := store.Open(context.Background(), opts)
		if err != nil {
			e.t.Fatalf("store.Open: %v", err)
		}
		e.t.Cleanup(func() { _ = st.Close() })
		e.st = st
	}
}

func series(t *testing.T, e *env, query string) shared.SeriesResponse {
	t.Helper()
	r := e.get(shared.PathHistory + "?" + query)
	if r.status != http.StatusOK {
		t.Fatalf("GET history?%s = %d %s", query, r.status, r.body)
	}
	var sr shared.SeriesResponse
	r.decode(t, &sr)
	return sr
}

func windowsOf(t *testing.T, e *env, query string) shared.WindowsResponse {
	t.Helper()
	r := e.get(shared.PathWindows + "?" + query)
	if r.status != http.StatusOK {
		t.Fatalf("GET windows?%s = %d %s", query, r.status, r.body)
	}
	var wr shared.WindowsResponse
	r.decode(t, &wr)
	return wr
}

// A 30-day series with 7-day retention still answers its 30 days (from
// the rollup beyond the kept versions), and so do the windows, through the
// real app and across a restart on the same data directory.
func TestHistoryOutlivesRetentionAndRestart(t *testing.T) {
	t.Parallel()
	warmFasthttp()
	synctest.Test(t, func(t *testing.T) {
		// On the hour, so that the rollup's hour starts are the readings' times.
		time.Sleep(time.Until(t0.Truncate(time.Hour).Add(time.Hour)))
		dir := t.TempDir()
		opts := store.Options{RetentionVersions: 10, RetentionDays: 7}
		now := withConfig(func(c *Config) { c.Now = time.Now })
		e := newEnv(t, atDir(dir, opts), now)
		start := time.Now().UTC()
		const week = 7 * 24 * time.Hour
		const n = 120 // every 6 h for 30 days
		for i := range n {
			time.Sleep(time.Until(start.Add(time.Duration(i) * 6 * time.Hour)))
			at := time.Now()
			resets := start.Add(week * (at.Sub(start)/week + 1))
			e.mustPost(weeklySnap(at, float64(i%28+1), resets))
		}
		synctest.Wait() // retention has run after the last save
		if got := e.st.Count("default"); got > 30 {
			t.Fatalf("retention kept %d versions, want the last 7 days' (28)", got)
		}
		until := time.Now().Add(time.Hour)
		q := url.Values{"meter": {"weekly_all"}, "since": {start.Format(time.RFC3339)},
			"until": {until.Format(time.RFC3339)}, "points": {"2000"}}.Encode()
		check := func(e *env) (shared.SeriesResponse, shared.WindowsResponse) {
			t.Helper()
			sr := series(t, e, q)
			if got, want := len(sr.Points), n; got != want {
				t.Fatalf("%d points, want one per snapshot of the 30 days (%d)", got, want)
			}
			for i, p := range sr.Points {
				if want := float64(i%28 + 1); p.PercentUsed != want {
					t.Errorf("point %d = %+v, want %v", i, p, want)
				}
			}
			if span := sr.Points[n-1].At.Sub(sr.Points[0].At); span < 29*24*time.Hour {
				t.Errorf("points span %v, want 30 days", span)
			}
			if sr.Meter != "weekly_all" || sr.Account != "default" || !sr.Since.Equal(start) || !sr.Until.Equal(until) {
				t.Errorf("series header = %+v", sr)
			}
			wr := windowsOf(t, e, "meter=weekly_all")
			if got, want := len(wr.Windows), 4; got != want {
				t.Fatalf("%d windows, want the 4 finished weeks: %+v", got, wr.Windows)
			}
			for i, w := range wr.Windows {
				resets := start.Add(week * time.Duration(4-i))
				if !w.ResetsAt.Equal(resets) || !w.Start.Equal(resets.Add(-week)) || w.Samples != 28 || w.PeakPercent != 28 ||
					w.FinalPercent != 28 || w.HitLimit || w.Meter != "weekly_all" {
					t.Errorf("window %d = %+v, want the week resetting at %s", i, w, resets)
				}
			}
			if got := windowsOf(t, e, "meter=weekly_all&limit=1").Windows; len(got) != 1 || !got[0].ResetsAt.Equal(wr.Windows[0].ResetsAt) {
				t.Errorf("limit=1 gave %+v, want the newest window", got)
			}
			return sr, wr
		}
		sr1, wr1 := check(e)

		_ = e.srv.Close()
		_ = e.st.Close()
		e2 := newEnv(t, atDir(dir, opts), now)
		sr2, wr2 := check(e2)
		if a, b := mustJSON(t, sr1), mustJSON(t, sr2); a != b {
			t.Errorf("series changed across the restart:\n%s\n%s", a, b)
		}
		if a, b := mustJSON(t, wr1), mustJSON(t, wr2); a != b {
			t.Errorf("windows changed across the restart:\n%s\n%s", a, b)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSeriesBuckets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i, pct := range []float64{10, 30, 20, 50, 40} {
		e.mustPost(snap("default", t0.Add(time.Duration(i)*10*time.Minute-time.Hour), pct))
	}
	tests := []struct {
		name     string
		query    string
		since    time.Time
		until    time.Time
		step     int64
		want     []shared.SeriesPoint
		wantNone bool
	}{
		// Defaults: the last 24 h before now in 500 buckets of 173 s.
		{name: "defaults", query: "meter=session", since: t0.Add(-24 * time.Hour), until: t0, step: 173, want: nil},
		{name: "two buckets, highest each", query: "meter=session&since=2026-11-28T12:50:00Z&until=2026-11-28T13:50:00Z&points=2",
			since: t0.Add(-time.Hour), until: t0, step: 1800, want: []shared.SeriesPoint{
				{At: t0.Add(-time.Hour), PercentUsed: 30}, {At: t0.Add(-30 * time.Minute), PercentUsed: 50},
			}},
		{name: "one bucket", query: "meter=session&since=2026-11-28T12:00:00Z&until=2026-11-28T14:00:00Z&points=1",
			since: t0.Add(-110 * time.Minute), until: t0.Add(10 * time.Minute), step: 7200, want: []shared.SeriesPoint{
				{At: t0.Add(-110 * time.Minute), PercentUsed: 50},
			}},
		{name: "step rounds up to whole seconds", query: "meter=session&since=2026-11-28T12:50:00Z&until=2026-11-28T12:50:10Z&points=3",
			since: t0.Add(-time.Hour), until: t0.Add(-time.Hour + 10*time.Second), step: 4, want: []shared.SeriesPoint{
				{At: t0.Add(-time.Hour), PercentUsed: 10},
			}},
		{name: "a meter not seen is empty", query: "meter=weekly_opus", since: t0.Add(-24 * time.Hour), until: t0, step: 173, wantNone: true},
		{name: "other meter", query: "meter=weekly_all&points=1&since=2026-11-28T12:00:00Z&until=2026-11-28T14:00:00Z",
			since: t0.Add(-110 * time.Minute), until: t0.Add(10 * time.Minute), step: 7200,
			want: []shared.SeriesPoint{{At: t0.Add(-110 * time.Minute), PercentUsed: 18}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sr := series(t, e, tt.query)
			if !sr.Since.Equal(tt.since) || !sr.Until.Equal(tt.until) || sr.StepSeconds != tt.step {
				t.Errorf("since %s until %s step %d, want %s %s %d", sr.Since, sr.Until, sr.StepSeconds, tt.since, tt.until, tt.step)
			}
			if tt.wantNone && len(sr.Points) != 0 || sr.Points == nil {
				t.Errorf("points = %#v, want an empty list", sr.Points)
			}
			if tt.want != nil && mustJSON(t, sr.Points) != mustJSON(t, tt.want) {
				t.Errorf("points = %v, want %v", sr.Points, tt.want)
			}
			if tt.want == nil && !tt.wantNone && len(sr.Points) != 5 {
				t.Errorf("%d points, want one per snapshot (5)", len(sr.Points))
			}
		})
	}
}

func TestHistoryAndWindowsValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	wantError(t, e.get(shared.PathHistory+"?meter=session"), http.StatusNotFound, shared.CodeNoData)
	wantError(t, e.get(shared.PathWindows+"?meter=session"), http.StatusNotFound, shared.CodeNoData)
	// The store tells finished windows by the real clock: this one is
	// current for long enough.
	e.mustPost(weeklySnap(t0, 5, time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)))
	tests := []struct {
		name, target, field string
	}{
		{"meter shape", shared.PathHistory + "?meter=Session", "meter"},
		{"empty meter", shared.PathHistory + "?meter=", "meter"},
		{"meter too long", shared.PathHistory + "?meter=" + strings.Repeat("a", 49), "meter"},
		{"since after until", shared.PathHistory + "?meter=session&since=2026-11-28T13:00:00Z&until=2026-11-28T12:00:00Z", "since"},
		{"since equals until", shared.PathHistory + "?meter=session&since=2026-11-28T13:00:00Z&until=2026-11-28T13:00:00Z", "since"},
		{"since after the default until", shared.PathHistory + "?meter=session&since=2026-11-29T00:00:00Z", "since"},
		{"more than 100 years", shared.PathHistory + "?meter=session&since=2000-01-01T00:00:00Z&until=9999-12-31T23:59:59Z", "since"},
		{"until not a time", shared.PathHistory + "?meter=session&until=now", "until"},
		{"until out of range", shared.PathHistory + "?meter=session&until=1999-12-31T23:59:59Z", "until"},
		{"points zero", shared.PathHistory + "?meter=session&points=0", "points"},
		{"points over the bound", shared.PathHistory + "?meter=session&points=2001", "points"},
		{"points not a number", shared.PathHistory + "?meter=session&points=lots", "points"},
		{"limit belongs to the old shape", shared.PathHistory + "?meter=session&limit=5", "limit"},
		{"points without meter", shared.PathHistory + "?points=5", "points"},
		{"until without meter", shared.PathHistory + "?until=2026-11-28T13:00:00Z", "until"},
		{"repeated meter", shared.PathHistory + "?meter=session&meter=weekly_all", "meter"},
		{"windows without meter", shared.PathWindows, "meter"},
		{"windows meter shape", shared.PathWindows + "?meter=a-b", "meter"},
		{"windows limit zero", shared.PathWindows + "?meter=session&limit=0", "limit"},
		{"windows limit over the bound", shared.PathWindows + "?meter=session&limit=501", "limit"},
		{"windows unknown parameter", shared.PathWindows + "?meter=session&since=2026-11-28T13:00:00Z", "since"},
		{"windows bad account", shared.PathWindows + "?meter=session&account=..", "account"},
		{"token in the windows query", shared.PathWindows + "?meter=session&access_token=" + testToken, "access_token"},
		{"stream unknown parameter", shared.PathStream + "?meter=session", "meter"},
		{"token in the stream query", shared.PathStream + "?token=" + testToken, "token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eb := wantError(t, e.get(tt.target), http.StatusBadRequest, shared.CodeInvalidQuery)
			credential := strings.Contains(eb.Message, "credentials are not accepted")
			if eb.Field != tt.field || !credential && !strings.Contains(eb.Message, tt.field) {
				t.Errorf("field %q message %q, want them to name %q", eb.Field, eb.Message, tt.field)
			}
		})
	}
	for _, p := range []string{shared.PathHistory + "?meter=session", shared.PathWindows + "?meter=session", shared.PathStream} {
		wantError(t, e.do(http.MethodGet, p, ""), http.StatusUnauthorized, shared.CodeAuthMissingKey)
	}
	if got := windowsOf(t, e, "meter=weekly_all&limit=500"); got.Windows == nil || len(got.Windows) != 0 || got.Meter != "weekly_all" {
		t.Errorf("windows of a meter in its first window = %+v, want an empty list", got)
	}
}

// GET latest's pace is shared.ComputePace at the version's scrapedAt: the
// widget computes it with the same function from the same input.
func TestLatestPaceIsComputePace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := `{"account":"default","scrapedAt":"2026-11-28T13:50:00Z","source":"test","capture":"api","meters":[
{"id":"session","label":"Current session","percentUsed":80,"resetsAt":"2026-11-28T16:00:00Z"},
{"id":"weekly_all","label":"All models","percentUsed":18,"resetsAt":"2026-12-04T09:00:00Z"},
{"id":"weekly_sonnet","label":"Sonnet only","percentUsed":3},
{"id":"monthly_x","label":"Other","percentUsed":7,"resetsAt":"2026-12-04T09:00:00Z"}]}`
	e.mustPost(body)
	var in shared.Snapshot
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour) // pace is the version's, not the clock's
	r := e.get(shared.PathUsage)
	var got shared.UsageResponse
	r.decode(t, &got)
	for i, m := range in.Meters {
		want, ok := shared.ComputePace(m, in.ScrapedAt)
		gm := got.Meters[i]
		switch {
		case !ok && gm.Pace != nil:
			t.Errorf("%s: pace %+v for a meter without a known window", m.ID, gm.Pace)
		case ok && gm.Pace == nil:
			t.Errorf("%s: no pace", m.ID)
		case ok && mustJSON(t, *gm.Pace) != mustJSON(t, want):
			t.Errorf("%s: pace %s, ComputePace gives %s", m.ID, mustJSON(t, *gm.Pace), mustJSON(t, want))
		}
	}
	if p := got.Meters[0].Pace; p == nil || p.Band != shared.BandAhead || p.RunsOutAt == nil {
		t.Errorf("session pace = %+v, want ahead with a runs-out time", p)
	}
	for _, raw := range []string{`"pace":{"windowStart":"2026-11-28T11:00:00Z"`, `"ratePerHour":`, `"willLast":`} {
		if !strings.Contains(string(r.body), raw) {
			t.Errorf("body lacks %s: %s", raw, r.body)
		}
	}
	// The cached answer carries the same pace.
	if again := e.get(shared.PathUsage); string(again.body) != string(r.body) {
		t.Errorf("second answer differs:\n%s\n%s", r.body, again.body)
	}
	if v1 := e.get(shared.PathUsage + "?version=1"); !strings.Contains(string(v1.body), `"pace":`) {
		t.Errorf("?version=1 has no pace: %s", v1.body)
	}
}

// FuzzSeriesQuery: whatever the raw query, the series and windows
// endpoints never answer 5xx, and a 200 series has at most points buckets.
func FuzzSeriesQuery(f *testing.F) {
	for _, q := range []string{"meter=session", "meter=session&points=1", "meter=session&points=2000&since=2000-01-01T00:00:00Z",
		"meter=session&since=9999-12-31T23:59:59Z&until=9999-12-31T23:59:59Z", "meter=x&since=2026-11-28T13:49:59.999999999Z",
		"meter=session&until=2000-01-01T00:00:00Z", "meter=session&since=2000-01-01T00:00:00Z&until=9999-12-31T23:59:59Z&points=1",
		"meter=session&since=2000-01-01T00:00:00Z&until=2099-12-31T23:59:59Z&points=2000", "meter=%zz", "meter=session&limit=50", "meter=session&points=-1"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.IndexFunc(raw, func(r rune) bool { return r <= 0x20 || r >= 0x7f }) >= 0 {
			return // not sendable in a request line
		}
		u := &url.URL{Path: shared.PathHistory, RawQuery: raw}
		if _, err := url.ParseRequestURI(u.String()); err != nil {
			return
		}
		e := newEnv(t)
		e.mustPost(snap("default", t0.Add(-time.Minute), 5))
		r := e.get(u.String())
		checkNoServerError(t, r)
		if r.status == http.StatusOK && strings.Contains(raw, "meter") {
			var sr shared.SeriesResponse
			r.decode(t, &sr)
			points := shared.DefaultSeriesPoints
			if v, err := url.ParseQuery(raw); err == nil && v.Get("points") != "" {
				fmt.Sscan(v.Get("points"), &points)
			}
			if len(sr.Points) > points || sr.StepSeconds < 1 {
				t.Fatalf("%d points of %d s for points=%d", len(sr.Points), sr.StepSeconds, points)
			}
		}
		u.Path = shared.PathWindows
		checkNoServerError(t, e.get(u.String()))
	})
}
