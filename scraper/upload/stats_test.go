package upload

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/shared"
)

func TestStatsOverLastTen(t *testing.T) {
	t.Parallel()
	tr, err := OpenTracker("", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Twelve syncs: the first two (slow failures) fall out of the window.
	tr.RecordSync(SyncRecord{At: t0, OK: false, Attempts: 4, DurationMs: 70000, Category: shared.CategoryServer}, "sync: SERVER")
	tr.RecordSync(SyncRecord{At: t0, OK: false, Attempts: 4, DurationMs: 90000, Category: shared.CategoryNetwork}, "sync: NETWORK")
	var last Stats
	for i := range 10 {
		r := SyncRecord{At: t0.Add(time.Duration(i) * time.Minute), OK: i != 3, Attempts: 1, DurationMs: int64(10 + i)}
		if i == 5 || i == 7 {
			r.Attempts = 2
		}
		if i == 3 {
			r.Category = shared.CategoryAuth
		}
		last = tr.RecordSync(r, "")
	}
	want := Stats{Syncs: 10, SuccessRate: 0.9, RetryRate: 0.2, MinMs: 10, MaxMs: 19, AvgMs: 14}
	if last != want {
		t.Errorf("stats = %+v, want %+v", last, want)
	}
	st := tr.State()
	if got := len(st.Recent); got != StatsWindow {
		t.Errorf("kept %d records, want %d", got, StatsWindow)
	}
	if st.LastError == nil || st.LastError.Category != string(shared.CategoryAuth) || st.LastError.Kind != "sync" {
		t.Errorf("last error = %+v, want the AUTH sync failure", st.LastError)
	}
	if want := t0.Add(9*time.Minute + 19*time.Millisecond); st.LastSuccess == nil || !st.LastSuccess.Equal(want) {
		t.Errorf("last success = %v, want %v", st.LastSuccess, want)
	}
	if got := (State{}).Stats(); got != (Stats{}) {
		t.Errorf("empty stats = %+v", got)
	}
}

func TestTrackerPersistsAndSurvivesCorruption(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state", "sync-state.json")
	tr, err := OpenTracker(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.RecordSync(SyncRecord{At: t0, OK: true, Attempts: 1, DurationMs: 12}, "")
	tr.RecordScrape(ScrapeRecord{At: t0.Add(time.Minute), OK: false, Category: string(shared.ScrapeNotLoggedIn), Message: "signed out"})
	st, err := ReadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st, tr.State()) {
		t.Errorf("file = %+v, memory = %+v", st, tr.State())
	}
	if st.LastError == nil || st.LastError.Kind != "scrape" || st.LastError.Category != string(shared.ScrapeNotLoggedIn) {
		t.Errorf("last error = %+v, want the scrape failure", st.LastError)
	}
	tr2, err := OpenTracker(path, nil)
	if err != nil || len(tr2.State().Recent) != 1 {
		t.Fatalf("reopened tracker = %+v, %v", tr2.State(), err)
	}
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	lb := &testutil.LogBuffer{}
	tr3, err := OpenTracker(path, slog.New(slog.NewJSONHandler(lb, nil)))
	if err != nil {
		t.Fatalf("a corrupt state file stopped the tracker: %v", err)
	}
	if len(tr3.State().Recent) != 0 || len(testutil.LogRecords(t, lb.String(), "state file unreadable, starting fresh statistics")) != 1 {
		t.Errorf("corrupt state not replaced and logged: %+v\n%s", tr3.State(), lb)
	}
	if _, err := ReadState(path); err == nil || !strings.HasPrefix(err.Error(), "sync: state") {
		t.Errorf("ReadState of a corrupt file = %v", err)
	}
	if st, err := ReadState(filepath.Join(t.TempDir(), "missing.json")); err != nil || st.LastSuccess != nil {
		t.Errorf("ReadState of a missing file = %+v, %v", st, err)
	}
}

func TestSendRecordsAndLogsStats(t *testing.T) {
	t.Parallel()
	fs := newFaultServer(t, step{status: 503}, step{status: 201}, step{status: 401})
	path := filepath.Join(t.TempDir(), "sync-state.json")
	synctest.Test(t, func(t *testing.T) {
		c, _, lb := newClient(t, fs.srv.URL)
		tr, err := OpenTracker(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Tracker = tr
		start := time.Now()
		if _, err := c.Send(context.Background(), testID, testSnap()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Send(context.Background(), "d4k2c6p3qf7c73a5ue11", testSnap()); CategoryOf(err) != shared.CategoryAuth {
			t.Fatalf("second Send = %v, want AUTH", err)
		}
		logs := testutil.LogRecords(t, lb.String(), "sync stats")
		if len(logs) != 2 {
			t.Fatalf("logged stats %d times, want after each of 2 syncs", len(logs))
		}
		if logs[1]["successRate"] != 0.5 || logs[1]["retryRate"] != 0.5 || logs[1]["syncs"] != float64(2) || logs[1]["component"] != "sync" {
			t.Errorf("stats log = %v", logs[1])
		}
		// The first sync waited 10 s for its retry; the second took no time.
		if got, want := []any{logs[1]["minMs"], logs[1]["maxMs"], logs[1]["avgMs"]}, []any{0.0, 10000.0, 5000.0}; !reflect.DeepEqual(got, want) {
			t.Errorf("min/max/avg = %v, want %v", got, want)
		}
		st := tr.State()
		if len(st.Recent) != 2 || st.Recent[0].Attempts != 2 || !st.Recent[0].OK || st.Recent[1].OK || st.LastSuccess == nil {
			t.Errorf("state = %+v", st)
		}
		if want := start.Add(10 * time.Second); !st.LastSuccess.Equal(want) {
			t.Errorf("last success = %v, want %v", st.LastSuccess, want)
		}
		if st.LastError == nil || st.LastError.Category != "AUTH" || !strings.Contains(st.LastError.Message, "401") {
			t.Errorf("last error = %+v", st.LastError)
		}
	})
}
