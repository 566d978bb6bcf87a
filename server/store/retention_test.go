package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rs/xid"
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
			dir := t.TempDir()
			times := agesAgo(t0, tc.ages...)
			writeFixtureAt(t, dir, "default", times)
			s, _, _ := openTest(t, dir, func(o *Options) { o.RetentionVersions = 5; o.RetentionDays = 7 })
			s.retain()

			slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
			wantTimes := times[len(times)-tc.keep:]
			if got, want := s.Count("default"), tc.keep; got != want {
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
			if got, want := len(listVersions(t, dir, "default")), tc.keep; got != want {
				t.Errorf("files = %d, want %d", got, want)
			}
		})
	}
}

func TestRetentionRunsAfterSave(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	removed := make(chan int, 10)
	s, _, _ := openTest(t, dir, func(o *Options) {
		o.RetentionVersions = 2
		o.RetentionDays = 1
		o.OnRetention = func(_ string, n int) { removed <- n }
	})
	ctx := context.Background()
	old := SaveRequest{Snapshot: snap("default", t0.Add(-10*day), 1), IdempotencyKey: "old", BodyHash: "h"}
	if _, err := s.Save(ctx, old); err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, snap("default", t0.Add(-9*day), 2))
	select {
	case n := <-removed:
		t.Fatalf("retention removed %d versions while only N existed", n)
	default:
	}
	mustSave(t, s, snap("default", t0.Add(-8*day), 3))
	select {
	case n := <-removed:
		if n != 1 {
			t.Errorf("removed %d, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("retention did not run after a save")
	}
	if got, want := s.Count("default"), 2; got != want {
		t.Errorf("Count = %d, want %d", got, want)
	}
	// The removed version's key is gone with it.
	res, err := s.Save(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed {
		t.Error("the key of a removed version still replays")
	}
}

// TestRetentionDoesNotBlockSave hangs retention's file removal and checks
// that saves and reads go on meanwhile.
func TestRetentionDoesNotBlockSave(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ffs := newFaultFS()
	s, _, _ := openTest(t, dir, func(o *Options) { o.FS = ffs; o.RetentionVersions = 1; o.RetentionDays = 1 })
	release := make(chan struct{})
	ft := ffs.add(&fault{op: "Remove", path: string(filepath.Separator) + versionsDir + string(filepath.Separator), block: release, times: -1})
	t.Cleanup(func() { close(release) })

	mustSave(t, s, snap("default", t0.Add(-5*day), 1))
	mustSave(t, s, snap("default", t0.Add(-4*day), 2))
	select {
	case <-ft.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("retention never tried to remove a file")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := s.Save(ctx, SaveRequest{Snapshot: snap("default", t0, 3)})
	if err != nil {
		t.Fatalf("Save while retention hangs: %v", err)
	}
	latest, err := s.Latest(ctx, "default")
	if err != nil || latest.ID != v.Version.ID {
		t.Errorf("Latest while retention hangs = %v, %v; want %s", latest.ID, err, v.Version.ID)
	}
}
