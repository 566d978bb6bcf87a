package alert

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// recorder is a Sink that keeps what the engine fired.
type recorder struct {
	mu     sync.Mutex
	alerts []Alert
}

func (r *recorder) Enqueue(_ context.Context, a Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts = append(r.alerts, a)
	return nil
}

func (r *recorder) got() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.alerts)
}

// summary is "kind threshold: message" per alert, the form the tables want.
func summary(as []Alert) []string {
	var out []string
	for _, a := range as {
		s := string(a.Kind)
		if a.Threshold > 0 {
			s += fmt.Sprintf(" %d", a.Threshold)
		}
		out = append(out, s+": "+a.Message)
	}
	return out
}

func openStore(t *testing.T, dir string) *store.FileStore {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func newEngine(t *testing.T, st *store.FileStore, sink Sink, mod func(*EngineConfig)) *Engine {
	t.Helper()
	cfg := EngineConfig{Source: st, State: st, Sink: sink, Location: time.UTC}
	if mod != nil {
		mod(&cfg)
	}
	e, err := NewEngine(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// base is a scrape time; the session window resets at 16:00 (R).
var (
	base = time.Date(2026, 11, 28, 14, 50, 0, 0, time.UTC)
	r0   = time.Date(2026, 11, 28, 16, 0, 0, 0, time.UTC)
)

// step is one event of a synthetic series.
type step struct {
	at      time.Duration // scrapedAt = base + at
	pct     float64       // the session meter
	resets  time.Time     // zero: no resetsAt
	key     string        // Idempotency-Key; the same key again is a replay
	restart bool          // a new engine on the same store before this step (no snapshot)
	// lose: with restart, the state document is lost first (a crash after
	// the claim, before the state was written): the claims still hold.
	lose bool
}

func session(at time.Duration, pct float64, resets time.Time) shared.Snapshot {
	m := shared.Meter{ID: shared.MeterSession, Label: "Current session", PercentUsed: pct}
	if !resets.IsZero() {
		r := resets
		m.ResetsAt = &r
	}
	return shared.Snapshot{Account: "default", Capture: shared.CaptureAPI, Source: "test", ScrapedAt: base.Add(at), Meters: []shared.Meter{m}}
}

func TestEngineSeries(t *testing.T) {
	r1 := r0.Add(5 * time.Hour) // the next session window
	min := time.Minute
	tests := []struct {
		name  string
		kinds []Kind
		steps []step
		want  []string
	}{
		{"a crossing fires once", []Kind{KindThreshold},
			[]step{{at: 0, pct: 70, resets: r0}, {at: min, pct: 90, resets: r0}, {at: 2 * min, pct: 91, resets: r0}},
			[]string{"threshold 90: Current session at 90 % — resets 16:00 (in 1 h 9 min)"}},
		{"two thresholds crossed by one snapshot: one alert, for the higher", []Kind{KindThreshold},
			[]step{{at: 0, pct: 70, resets: r0}, {at: min, pct: 96, resets: r0}, {at: 2 * min, pct: 97, resets: r0}},
			[]string{"threshold 95: Current session at 96 % — resets 16:00 (in 1 h 9 min)"}},
		{"a dip within the hysteresis does not re-arm", []Kind{KindThreshold},
			[]step{{at: 0, pct: 76, resets: r0}, {at: min, pct: 71, resets: r0}, {at: 2 * min, pct: 77, resets: r0}},
			[]string{"threshold 75: Current session at 76 % — resets 16:00 (in 1 h 10 min)"}},
		{"a fall 5 points below re-arms", []Kind{KindThreshold},
			[]step{{at: 0, pct: 76, resets: r0}, {at: min, pct: 70, resets: r0}, {at: 2 * min, pct: 75, resets: r0}},
			[]string{"threshold 75: Current session at 76 % — resets 16:00 (in 1 h 10 min)",
				"threshold 75: Current session at 75 % — resets 16:00 (in 1 h 8 min)"}},
		{"a transient 0 % is not a reset and re-arms nothing", []Kind{KindThreshold, KindReset},
			[]step{{at: 0, pct: 80, resets: r0}, {at: min, pct: 0, resets: r0}, {at: 2 * min, pct: 80, resets: r0}},
			[]string{"threshold 75: Current session at 80 % — resets 16:00 (in 1 h 10 min)"}},
		{"a lower value with a later resetsAt before the reset time is not a reset", []Kind{KindReset},
			[]step{{at: 0, pct: 60, resets: r0}, {at: min, pct: 3, resets: r1}, {at: 2 * min, pct: 61, resets: r0}},
			nil},
		{"a real reset", []Kind{KindReset},
			[]step{{at: 0, pct: 60, resets: r0}, {at: 71 * min, pct: 2, resets: r1}, {at: 72 * min, pct: 3, resets: r1}},
			[]string{"reset: Current session has reset — 2 % used"}},
		{"a reset of a window that stayed under 50 % is not told", []Kind{KindReset},
			[]step{{at: 0, pct: 40, resets: r0}, {at: 71 * min, pct: 2, resets: r1}},
			nil},
		{"a new window re-arms the thresholds", []Kind{KindThreshold},
			[]step{{at: 0, pct: 80, resets: r0}, {at: 71 * min, pct: 1, resets: r1}, {at: 72 * min, pct: 80, resets: r1}},
			[]string{"threshold 75: Current session at 80 % — resets 16:00 (in 1 h 10 min)",
				"threshold 75: Current session at 80 % — resets 21:00 (in 4 h 58 min)"}},
		{"a late outbox snapshot never fires", []Kind{KindThreshold},
			[]step{{at: 10 * min, pct: 50, resets: r0}, {at: 5 * min, pct: 96, resets: r0}},
			nil},
		{"an idempotent replay never fires", []Kind{KindThreshold},
			[]step{{at: 0, pct: 50, resets: r0, key: "k1"}, {at: min, pct: 80, resets: r0, key: "k2"}, {at: min, pct: 80, resets: r0, key: "k2"}},
			[]string{"threshold 75: Current session at 80 % — resets 16:00 (in 1 h 9 min)"}},
		{"a restart in between never fires again", []Kind{KindThreshold, KindReset},
			[]step{{at: 0, pct: 80, resets: r0}, {restart: true}, {at: min, pct: 82, resets: r0}, {restart: true}},
			[]string{"threshold 75: Current session at 80 % — resets 16:00 (in 1 h 10 min)"}},
		{"a crash before the state was written never fires again", []Kind{KindThreshold, KindReset},
			[]step{{at: 0, pct: 80, resets: r0}, {restart: true, lose: true}, {at: min, pct: 82, resets: r0}},
			[]string{"threshold 75: Current session at 80 % — resets 16:00 (in 1 h 10 min)"}},
		{"pace: once per window when it runs out more than 10 min early", []Kind{KindPace},
			// 3 h 50 min into the window at 70 %: 18.3 %/h, 100 % at 16:28, after the reset: no.
			// Then a window from 16:00: at 17:00 with 40 %, 100 % at 18:30, 2 h 30 min early.
			[]step{{at: 0, pct: 70, resets: r0}, {at: 130 * min, pct: 40, resets: r1}, {at: 140 * min, pct: 45, resets: r1}},
			[]string{"pace: At this pace Current session runs out at 18:30, 2 h 30 min before it resets"}},
		{"pace: not under 30 %", []Kind{KindPace},
			[]step{{at: 130 * min, pct: 29, resets: r1}},
			nil},
		{"pace: not when it runs out less than 10 min early", []Kind{KindPace},
			// 2 h into a 5 h window at 41 %: 20.5 %/h, 100 % in 2 h 53 min, 7 min before the reset.
			[]step{{at: 190 * min, pct: 41, resets: r1}},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t, t.TempDir())
			rec := &recorder{}
			mk := func() *Engine {
				return newEngine(t, st, rec, func(c *EngineConfig) {
					if tt.kinds != nil {
						c.Kinds = tt.kinds
					}
				})
			}
			e := mk()
			ctx := context.Background()
			for i, s := range tt.steps {
				if s.restart {
					if s.lose {
						if err := os.Remove(filepath.Join(st.Dir(), store.AlertStateFile)); err != nil {
							t.Fatal(err)
						}
					}
					e = mk()
					e.EvaluateAccount(ctx, "default")
					continue
				}
				snap := session(s.at, s.pct, s.resets)
				hash := fmt.Sprintf("h%d", s.at)
				res, err := st.Save(ctx, store.SaveRequest{Snapshot: snap, IdempotencyKey: s.key, BodyHash: hash})
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if !res.Replayed { // as Store.Subscribe: a replay stores nothing
					e.Saved(res.Version.Snapshot.Account)
				}
				e.EvaluateAccount(ctx, "default")
			}
			if got, want := summary(rec.got()), tt.want; !slices.Equal(got, want) {
				t.Errorf("alerts:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestEngineIDs: the id is DESIGN's hash, the same for the same window
// whatever the reading, and different per threshold and window.
func TestEngineIDs(t *testing.T) {
	id := ID("default", "session", KindThreshold, 90, r0)
	// echo -n 'default|session|threshold|90|2026-11-28T16:00:00Z' | sha256sum
	if got, want := id, "80fd60245e6d75a9497eca584bc7f67a39ee5db475d3c482a057b44077c83678"; got != want {
		t.Errorf("id = %s, want %s", got, want)
	}
	if ID("default", "session", KindThreshold, 95, r0) == id || ID("default", "session", KindThreshold, 90, r0.Add(time.Hour)) == id {
		t.Error("ids of another threshold or window must differ")
	}
}

// TestEngineStaleAndScraper runs the engine's ticker on a fake clock.
func TestEngineStaleAndScraper(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := openStore(t, t.TempDir())
		rec := &recorder{}
		e := newEngine(t, st, rec, func(c *EngineConfig) { c.Kinds = []Kind{KindStale, KindScraper} })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); e.Run(ctx) }()
		defer func() { cancel(); <-done }()

		start := time.Now()
		save := func(pct float64) {
			t.Helper()
			sn := shared.Snapshot{Account: "default", Capture: shared.CaptureAPI, Source: "test", ScrapedAt: time.Now(), Meters: []shared.Meter{{ID: "session", Label: "Current session", PercentUsed: pct}}}
			res, err := st.Save(ctx, store.SaveRequest{Snapshot: sn})
			if err != nil {
				t.Fatal(err)
			}
			e.Saved(res.Version.Snapshot.Account)
		}
		report := func(ok bool, cat shared.ScrapeClass) {
			t.Helper()
			if _, err := st.SaveScraperStatus(ctx, shared.ScraperStatus{Account: "default", At: time.Now(), OK: ok, Category: cat}); err != nil {
				t.Fatal(err)
			}
		}
		at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))); synctest.Wait() }
		want := func(when string, n int) {
			t.Helper()
			if got := len(rec.got()); got != n {
				t.Fatalf("%s: %d alerts %q, want %d", when, got, summary(rec.got()), n)
			}
		}

		save(10)
		report(false, shared.ScrapeNotLoggedIn)
		at(14*time.Minute + 30*time.Second)
		want("14.5 min", 0)
		at(15*time.Minute + 30*time.Second)
		want("15.5 min: the scraper alert", 1)
		if got, want := rec.got()[0].Message, shared.ScrapeNotLoggedIn.NextStep(); got != want {
			t.Errorf("scraper message %q, want the next step %q", got, want)
		}
		at(29*time.Minute + 30*time.Second)
		want("29.5 min", 1)
		at(30*time.Minute + 30*time.Second)
		want("30.5 min: the stale alert", 2)
		if got, want := rec.got()[1].Message, "No new usage data for 30 min"; got != want {
			t.Errorf("stale message %q, want %q", got, want)
		}
		at(90 * time.Minute)
		want("90 min: still stale, still signed out: nothing new", 2)

		// Recovery re-arms both; the next episode fires again.
		report(true, "")
		save(11)
		at(91 * time.Minute)
		report(false, shared.ScrapeLayoutChanged)
		at(105*time.Minute + 30*time.Second)
		want("105.5 min", 2)
		at(106*time.Minute + 30*time.Second)
		want("106.5 min: the second scraper episode", 3)
		if got := rec.got()[2].Message; !strings.Contains(got, "update the scraper") {
			t.Errorf("second scraper message %q", got)
		}
		at(120*time.Minute + 30*time.Second)
		want("120.5 min: the second stale episode", 4)
	})
}

// Two replicas evaluate the same jump across thresholds: the one that
// claims its highest threshold sends the one message, and the other sends
// nothing, not a message for a lower threshold it happened to claim first.
func TestEngineJumpOwnedByTheHighestClaim(t *testing.T) {
	st := openStore(t, t.TempDir())
	rec := &recorder{}
	e := newEngine(t, st, rec, func(c *EngineConfig) { c.Kinds = []Kind{KindThreshold} })
	ctx := context.Background()
	// The other replica has claimed this reading's highest threshold.
	if ok, err := st.ClaimAlert(ctx, ID("default", shared.MeterSession, KindThreshold, 95, r0), base); err != nil || !ok {
		t.Fatalf("claim = %v, %v", ok, err)
	}
	res, err := st.Save(ctx, store.SaveRequest{Snapshot: session(0, 96, r0), BodyHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	e.Saved(res.Version.Snapshot.Account)
	e.EvaluateAccount(ctx, "default")
	if got := summary(rec.got()); len(got) != 0 {
		t.Errorf("alerts %q, want none: the other replica owns this jump", got)
	}
	// The jump's thresholds count as sent here too: a later reading in the
	// same window does not send them.
	res, err = st.Save(ctx, store.SaveRequest{Snapshot: session(time.Minute, 97, r0), BodyHash: "h2"})
	if err != nil {
		t.Fatal(err)
	}
	e.Saved(res.Version.Snapshot.Account)
	e.EvaluateAccount(ctx, "default")
	if got := summary(rec.got()); len(got) != 0 {
		t.Errorf("alerts after a later reading %q, want none", got)
	}
}
