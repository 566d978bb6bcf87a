package alert

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/claude-usage/widget/server/store"
)

// TestStateWrittenOnlyWhenItChanges: every stored snapshot is evaluated,
// and most change nothing but the time of the newest one evaluated (a
// scraper posting the same percentages each minute). Writing the state
// for those is a durable file write (or a database upsert) per POST that
// records nothing a restart needs: re-evaluating that snapshot after a
// restart changes nothing either, and the claims keep any alert from
// going out twice. The state file is replaced (a new inode) on each
// write.
func TestStateWrittenOnlyWhenItChanges(t *testing.T) {
	st := openStore(t, t.TempDir())
	rec := &recorder{}
	e := newEngine(t, st, rec, nil)
	ctx := context.Background()
	path := filepath.Join(st.Dir(), store.AlertStateFile)
	post := func(at time.Duration, pct float64) {
		t.Helper()
		if _, err := st.Save(ctx, store.SaveRequest{Snapshot: session(at, pct, r0)}); err != nil {
			t.Fatal(err)
		}
		e.EvaluateAccount(ctx, "default")
	}
	stat := func() os.FileInfo {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}

	post(0, 70) // a new account and meter: written
	first := stat()
	for i := range 3 { // the same reading, a minute later each time
		post(time.Duration(i+1)*time.Minute, 70)
		if !os.SameFile(first, stat()) {
			t.Fatalf("reading %d changed nothing but the time and the state was written again", i+2)
		}
	}
	post(4*time.Minute, 71) // a new peak: written
	if os.SameFile(first, stat()) {
		t.Fatal("a new peak was not written")
	}

	// A restart re-evaluates the newest snapshot, whose time the state
	// lacks: nothing fires, and the next crossing fires once.
	peak := stat()
	post(5*time.Minute, 71)
	if !os.SameFile(peak, stat()) {
		t.Fatal("a reading that changed nothing but the time was written")
	}
	e = newEngine(t, st, rec, nil)
	e.EvaluateAccount(ctx, "default")
	post(6*time.Minute, 76)
	e = newEngine(t, st, rec, nil)
	e.EvaluateAccount(ctx, "default")
	post(7*time.Minute, 76)
	if got, want := summary(rec.got()), []string{"threshold 75: Current session at 76 % — resets 16:00 (in 1 h 4 min)"}; !slices.Equal(got, want) {
		t.Errorf("alerts:\n got %q\nwant %q", got, want)
	}
}
