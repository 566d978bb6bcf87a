package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/xid"

	"github.com/claude-usage/widget/internal/testutil"
)

// writeFixtureAt writes one version file per time, in the given arrival order.
func writeFixtureAt(t testing.TB, dir, account string, times []time.Time) {
	t.Helper()
	vdir := filepath.Join(dir, account, versionsDir)
	if err := os.MkdirAll(vdir, 0o750); err != nil {
		t.Fatal(err)
	}
	for i, at := range times {
		r := record{Schema: recordSchema, ID: xid.New().String(), StoredAt: t0, Seq: uint64(i + 1),
			IdempotencyKey: fmt.Sprintf("k%d", i), BodyHash: "h", Snapshot: snap(account, at, 1)}
		data, _ := json.Marshal(r)
		if err := os.WriteFile(filepath.Join(vdir, fileName(at, r.ID)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func agesAgo(now time.Time, ages ...time.Duration) []time.Time {
	var out []time.Time
	for _, a := range ages {
		out = append(out, now.Add(-a))
	}
	return out
}

func repeat(d time.Duration, step time.Duration, n int) []time.Duration {
	var out []time.Duration
	for i := range n {
		out = append(out, d+time.Duration(i)*step)
	}
	return out
}

const day = 24 * time.Hour

func TestRetentionKeepsMaxOfCountAndDays(t *testing.T) {
	t.Parallel()
	// RetentionVersions 5, RetentionDays 7, now = t0.
	cases := []struct {
		name string
		ages []time.Duration
		keep int
	}{
		{"fewer than N, all old", repeat(30*day, time.Hour, 3), 3},
		{"N wins over days", repeat(30*day, time.Hour, 20), 5},
		{"days win over N", append(repeat(time.Hour, time.Hour, 12), repeat(10*day, time.Hour, 8)...), 12},
		{"few recent, N fills up with the newest old ones", append(repeat(time.Hour, time.Hour, 3), repeat(10*day, time.Hour, 10)...), 5},
		{"exactly D days old is kept", append(append(repeat(time.Hour, time.Hour, 5), 7*day), repeat(8*day, time.Hour, 5)...), 6},
		{"just over D days is not", append(append(repeat(time.Hour, time.Hour, 5), 7*day+time.Second), repeat(8*day, time.Hour, 5)...), 5},
		{"late arrival: order is by scrapedAt, not arrival", append(repeat(9*day, time.Hour, 6), repeat(40*day, time.Hour, 4)...), 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bubble(t, func(t *testing.T) { testRetention(t, tc.ages, tc.keep) })
		})
	}
}

// testRetention stores versions of the given ages (now is t0), runs
// retention with RetentionVersions 5 and RetentionDays 7 and checks that
// the newest keep versions are left, in the index and on disk.
func testRetention(t *testing.T, ages []time.Duration, keep int) {
	dir := t.TempDir()
	times := agesAgo(t0, ages...)
	writeFixtureAt(t, dir, "default", times)
	s := openTest(t, dir, func(o *Options) { o.RetentionVersions = 5; o.RetentionDays = 7 })
	s.retain()

	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	wantTimes := times[len(times)-keep:]
	if got, want := s.Count("default"), keep; got != want {
		t.Fatalf("Count = %d, want %d", got, want)
	}
	vs, err := s.History(context.Background(), "default", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var gotTimes []time.Time
	for _, v := range vs {
		gotTimes = append(gotTimes, v.Snapshot.ScrapedAt)
	}
	if !slices.EqualFunc(gotTimes, wantTimes, time.Time.Equal) {
		t.Errorf("kept %v, want the newest %v", gotTimes, wantTimes)
	}
	if got, want := len(listVersions(t, dir, "default")), keep; got != want {
		t.Errorf("files = %d, want %d", got, want)
	}
}

func TestRetentionRunsAfterSave(t *testing.T) {
	t.Parallel()
	bubble(t, func(t *testing.T) {
		s := openTest(t, t.TempDir(), func(o *Options) {
			o.RetentionVersions = 2
			o.RetentionDays = 1
		})
		ctx := context.Background()
		old := SaveRequest{Snapshot: snap("default", t0.Add(-10*day), 1), IdempotencyKey: "old", BodyHash: "h"}
		if _, err := s.Save(ctx, old); err != nil {
			t.Fatal(err)
		}
		mustSave(t, s, snap("default", t0.Add(-9*day), 2))
		synctest.Wait()
		if got, want := s.Count("default"), 2; got != want {
			t.Fatalf("retention removed versions while only N existed: Count = %d, want %d", got, want)
		}
		mustSave(t, s, snap("default", t0.Add(-8*day), 3))
		synctest.Wait() // the retention goroutine has run and waits again
		if got, want := s.Count("default"), 2; got != want {
			t.Errorf("Count = %d, want %d", got, want)
		}
		if got, want := len(listVersions(t, s.Dir(), "default")), 2; got != want {
			t.Errorf("files = %d, want %d", got, want)
		}
		// The removed version's key is gone with it.
		res, err := s.Save(ctx, old)
		if err != nil {
			t.Fatal(err)
		}
		if res.Replayed {
			t.Error("the key of a removed version still replays")
		}
	})
}

// TestRetentionDoesNotBlockSave hangs retention's file removal and checks
// that saves and reads go on meanwhile.
func TestRetentionDoesNotBlockSave(t *testing.T) {
	t.Parallel()
	bubble(t, func(t *testing.T) {
		ffs := newFaultFS()
		s := openTest(t, t.TempDir(), func(o *Options) { o.FS = ffs; o.RetentionVersions = 1; o.RetentionDays = 1 })
		release := make(chan struct{})
		ft := ffs.Add(&testutil.Fault{Op: "Remove", Path: string(filepath.Separator) + versionsDir + string(filepath.Separator), Block: release, Times: -1})
		t.Cleanup(func() { close(release) }) // before the store's Close, which waits for retention

		mustSave(t, s, snap("default", t0.Add(-5*day), 1))
		mustSave(t, s, snap("default", t0.Add(-4*day), 2))
		<-ft.Entered
		ctx := context.Background()
		v, err := s.Save(ctx, SaveRequest{Snapshot: snap("default", t0, 3)})
		if err != nil {
			t.Fatalf("Save while retention hangs: %v", err)
		}
		latest, err := s.Latest(ctx, "default")
		if err != nil || latest.ID != v.Version.ID {
			t.Errorf("Latest while retention hangs = %v, %v; want %s", latest.ID, err, v.Version.ID)
		}
	})
}
