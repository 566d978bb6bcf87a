package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/xid"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/shared"
)

// reading is one scrape of one meter for the rollup tests.
type reading struct {
	at     time.Duration // after t0
	pct    float64
	resets time.Duration // after t0; 0: no resetsAt
}

func meterSnap(account, meter string, rd reading) shared.Snapshot {
	m := shared.Meter{ID: meter, Label: "Meter " + meter, PercentUsed: rd.pct}
	if rd.resets != 0 {
		r := t0.Add(rd.resets)
		m.ResetsAt = &r
	}
	return shared.Snapshot{Account: account, ScrapedAt: t0.Add(rd.at), Source: "test", Capture: shared.CaptureAPI,
		Meters: []shared.Meter{m}}
}

func series(t *testing.T, s Store, meter string, since, until time.Time) []shared.SeriesPoint {
	t.Helper()
	pts, err := s.Series(context.Background(), "default", meter, since, until)
	if err != nil {
		t.Fatalf("Series: %v", err)
	}
	return pts
}

func windows(t *testing.T, s Store, meter string, limit int) []shared.Window {
	t.Helper()
	ws, err := s.Windows(context.Background(), "default", meter, limit)
	if err != nil {
		t.Fatalf("Windows: %v", err)
	}
	return ws
}

func TestRollupWindows(t *testing.T) {
	const h = time.Hour
	tests := []struct {
		name     string
		meter    string
		readings []reading
		now      time.Duration // the clock when asking, after t0
		want     []shared.Window
	}{
		{
			name: "current window is not finished", meter: shared.MeterSession,
			readings: []reading{{0, 10, 2 * h}, {h, 30, 2 * h}},
			now:      h + time.Minute,
			want:     []shared.Window{},
		},
		{
			name: "a later resetsAt finishes the window", meter: shared.MeterSession,
			readings: []reading{{0, 10, 2 * h}, {h, 60, 2 * h}, {90 * time.Minute, 55, 2 * h}, {3 * h, 5, 7 * h}},
			now:      3 * h,
			want: []shared.Window{{Meter: shared.MeterSession, Start: t0.Add(-3 * h), ResetsAt: t0.Add(2 * h),
				PeakPercent: 60, FinalPercent: 55, Samples: 3}},
		},
		{
			name: "resetsAt passed finishes it without a later snapshot", meter: shared.MeterSession,
			readings: []reading{{0, 100, 2 * h}},
			now:      2 * h,
			want: []shared.Window{{Meter: shared.MeterSession, Start: t0.Add(-3 * h), ResetsAt: t0.Add(2 * h),
				PeakPercent: 100, FinalPercent: 100, HitLimit: true, Samples: 1}},
		},
		{
			name: "resetsAt read from text moves a minute: one window", meter: shared.MeterSession,
			readings: []reading{{0, 10, 2 * h}, {time.Minute, 12, 2*h + time.Minute}, {2 * time.Minute, 14, 2*h - time.Minute}},
			now:      3 * h,
			want: []shared.Window{{Meter: shared.MeterSession, Start: t0.Add(-3*h - time.Minute), ResetsAt: t0.Add(2*h - time.Minute),
				PeakPercent: 14, FinalPercent: 14, Samples: 3}},
		},
		{
			name: "late snapshot joins its old window, final stays the newest reading", meter: shared.MeterSession,
			readings: []reading{{0, 10, 2 * h}, {h, 40, 2 * h}, {3 * h, 5, 7 * h}, {30 * time.Minute, 70, 2 * h}},
			now:      3 * h,
			want: []shared.Window{{Meter: shared.MeterSession, Start: t0.Add(-3 * h), ResetsAt: t0.Add(2 * h),
				PeakPercent: 70, FinalPercent: 40, Samples: 3}},
		},
		{
			name: "a reading after its own reset counts for no window", meter: shared.MeterSession,
			readings: []reading{{0, 10, 2 * h}, {2 * h, 99, 2 * h}},
			now:      3 * h,
			want: []shared.Window{{Meter: shared.MeterSession, Start: t0.Add(-3 * h), ResetsAt: t0.Add(2 * h),
				PeakPercent: 10, FinalPercent: 10, Samples: 1}},
		},
		{
			name: "newest first, weekly length", meter: shared.MeterWeeklyAll,
			readings: []reading{{0, 20, 24 * h}, {25 * h, 30, 8 * 24 * h}, {8*24*h + h, 1, 15 * 24 * h}},
			now:      8*24*h + h,
			want: []shared.Window{
				{Meter: shared.MeterWeeklyAll, Start: t0.Add(24 * h), ResetsAt: t0.Add(8 * 24 * h), PeakPercent: 30, FinalPercent: 30, Samples: 1},
				{Meter: shared.MeterWeeklyAll, Start: t0.Add(-6 * 24 * h), ResetsAt: t0.Add(24 * h), PeakPercent: 20, FinalPercent: 20, Samples: 1},
			},
		},
		{
			name: "unknown window length starts at the first reading", meter: "monthly_x",
			readings: []reading{{h, 5, 10 * h}, {2 * h, 8, 10 * h}, {11 * h, 1, 40 * h}},
			now:      11 * h,
			want:     []shared.Window{{Meter: "monthly_x", Start: t0.Add(h), ResetsAt: t0.Add(10 * h), PeakPercent: 8, FinalPercent: 8, Samples: 2}},
		},
		{
			name: "no resetsAt, no windows", meter: shared.MeterWeeklySonnet,
			readings: []reading{{0, 5, 0}, {h, 8, 0}},
			now:      10 * 24 * h,
			want:     []shared.Window{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				s := openTest(t, t.TempDir(), nil)
				for _, rd := range tt.readings {
					mustSave(t, s, meterSnap("default", tt.meter, rd))
				}
				time.Sleep(time.Until(t0.Add(tt.now)))
				if got := windows(t, s, tt.meter, 0); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("Windows =\n%+v\nwant\n%+v", got, tt.want)
				}
			})
		})
	}
}

func TestRollupSeries(t *testing.T) {
	bubble(t, func(t *testing.T) {
		// Retention keeps the newest 2 versions only when they are older
		// than a day: everything before them comes from the rollup.
		s := openTest(t, t.TempDir(), func(o *Options) { o.RetentionVersions = 2; o.RetentionDays = 1 })
		const h = time.Hour
		for _, rd := range []reading{
			{0, 10, 0},                                           // 13:50
			{20 * time.Minute, 30, 0}, {40 * time.Minute, 20, 0}, // 14:10, 14:30
			{2 * h, 50, 0},                             // 15:50
			{170 * time.Minute, 62, 0},                 // 16:40
			{3 * h, 60, 0}, {3*h + time.Minute, 65, 0}, // 16:50, 16:51: kept as versions
		} {
			mustSave(t, s, meterSnap("default", shared.MeterSession, rd))
		}
		time.Sleep(3 * 24 * h)
		waitRetention(t, s, 2)
		hour := func(d time.Duration) time.Time { return t0.Add(d).Truncate(h) }
		tests := []struct {
			name         string
			since, until time.Time
			want         []shared.SeriesPoint
		}{
			// The hour of the oldest kept version (16:00) comes from the
			// rollup too: its reading at 16:40 is gone with its version.
			{"all", t0.Add(-h), t0.Add(4 * h), []shared.SeriesPoint{
				{At: hour(0), PercentUsed: 10}, {At: hour(h), PercentUsed: 30}, {At: hour(2 * h), PercentUsed: 50},
				{At: hour(3 * h), PercentUsed: 65}, {At: t0.Add(3 * h), PercentUsed: 60}, {At: t0.Add(3*h + time.Minute), PercentUsed: 65},
			}},
			{"until is exclusive", t0.Add(-h), t0.Add(3*h + time.Minute), []shared.SeriesPoint{
				{At: hour(0), PercentUsed: 10}, {At: hour(h), PercentUsed: 30}, {At: hour(2 * h), PercentUsed: 50},
				{At: hour(3 * h), PercentUsed: 65}, {At: t0.Add(3 * h), PercentUsed: 60},
			}},
			{"since mid-hour leaves that hour out", t0, t0.Add(4 * h), []shared.SeriesPoint{
				{At: hour(h), PercentUsed: 30}, {At: hour(2 * h), PercentUsed: 50}, {At: hour(3 * h), PercentUsed: 65},
				{At: t0.Add(3 * h), PercentUsed: 60}, {At: t0.Add(3*h + time.Minute), PercentUsed: 65},
			}},
			{"empty range", t0.Add(h), t0.Add(h), []shared.SeriesPoint{}},
			{"before everything", t0.Add(-48 * h), t0.Add(-24 * h), []shared.SeriesPoint{}},
		}
		for _, tt := range tests { // t.Run cannot run inside a bubble
			if got := series(t, s, shared.MeterSession, tt.since, tt.until); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: Series =\n%v\nwant\n%v", tt.name, got, tt.want)
			}
		}
		if got := series(t, s, "never_seen", t0.Add(-h), t0.Add(4*h)); len(got) != 0 {
			t.Errorf("Series of an unknown meter = %v, want empty", got)
		}
		for _, bad := range []string{"", "Session", "a/b", strings.Repeat("x", 49)} {
			_, err := s.Series(context.Background(), "default", bad, t0, t0.Add(h))
			var se *shared.Error
			if !errors.As(err, &se) || se.Code != shared.CodeInvalidQuery || se.Field != "meter" {
				t.Errorf("Series(meter %q) = %v, want INVALID_QUERY on meter", bad, err)
			}
		}
		if _, err := s.Series(context.Background(), "nobody", shared.MeterSession, t0, t0.Add(h)); codeOf(err) != shared.CodeNoData {
			t.Errorf("Series of an account without data = %v, want NO_DATA", err)
		}
		if _, err := s.Windows(context.Background(), "nobody", shared.MeterSession, 1); codeOf(err) != shared.CodeNoData {
			t.Errorf("Windows of an account without data = %v, want NO_DATA", err)
		}
	})
}

// waitRetention lets the retention goroutine run until account default has
// n versions; in a bubble, synctest.Wait would do, but a retention run
// starts only on a save, which the caller has made.
func waitRetention(t *testing.T, s *FileStore, n int) {
	t.Helper()
	s.retain()
	if got := s.Count("default"); got != n {
		t.Fatalf("after retention Count = %d, want %d", got, n)
	}
}

// A 30-day series with 7-day retention answers its 30 days from the
// rollup, across a restart; the rollup's file is what keeps them.
func TestRollupOutlivesRetentionAcrossRestart(t *testing.T) {
	bubble(t, func(t *testing.T) {
		dir := t.TempDir()
		opts := func(o *Options) { o.RetentionVersions = 10; o.RetentionDays = 7 }
		s := openTest(t, dir, opts)
		start := time.Now()
		for d := range 30 {
			for _, hh := range []int{2, 14} {
				at := time.Duration(d)*24*time.Hour + time.Duration(hh)*time.Hour
				mustSave(t, s, meterSnap("default", shared.MeterWeeklyAll, reading{at: at, pct: float64(d + 1)}))
			}
		}
		time.Sleep(30 * 24 * time.Hour)
		s.retain()
		if got := s.Count("default"); got > 16 {
			t.Fatalf("retention kept %d versions, want the last 7 days' (14)", got)
		}
		check := func(s Store) {
			t.Helper()
			pts := series(t, s, shared.MeterWeeklyAll, start, time.Now())
			days := map[int]bool{}
			for _, p := range pts {
				days[int(p.At.Sub(start)/(24*time.Hour))] = true
			}
			if len(days) != 30 {
				t.Errorf("series covers %d days, want 30 (%d points)", len(days), len(pts))
			}
			if first := pts[0]; !first.At.Equal(start.Add(2*time.Hour).Truncate(time.Hour)) || first.PercentUsed != 1 {
				t.Errorf("first point = %+v", first)
			}
		}
		check(s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "default", RollupFile)); err != nil {
			t.Fatalf("rollup file after Close: %v", err)
		}
		s2 := openTest(t, dir, opts)
		check(s2)

		// Without its file the rollup is rebuilt from what versions are
		// left: derived data, never a second truth.
		if err := s2.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, "default", RollupFile)); err != nil {
			t.Fatal(err)
		}
		s3 := openTest(t, dir, opts)
		pts := series(t, s3, shared.MeterWeeklyAll, start, time.Now())
		if got, want := len(pts), s3.Count("default"); got != want {
			t.Errorf("rebuilt series has %d points, want one per kept version (%d)", got, want)
		}
	})
}

func TestRollupRebuiltWhenDamaged(t *testing.T) {
	valid := func(t *testing.T, dir string) []byte {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(dir, "default", RollupFile))
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	tests := []struct {
		name        string
		damage      func(raw []byte) []byte
		quarantined bool
	}{
		{"not JSON", func([]byte) []byte { return []byte("{\"format\": 1, \"acc") }, true},
		{"older format", func(raw []byte) []byte { return []byte(strings.Replace(string(raw), `"format":1`, `"format":0`, 1)) }, false},
		{"other account", func(raw []byte) []byte {
			return []byte(strings.Replace(string(raw), `"account":"default"`, `"account":"x"`, 1))
		}, true},
		{"percent out of range", func(raw []byte) []byte {
			var d rollupDoc
			_ = json.Unmarshal(raw, &d)
			md := d.Meters[shared.MeterSession]
			md.Hours[0][1] = 140
			d.Meters[shared.MeterSession] = md
			b, _ := json.Marshal(d)
			return b
		}, true},
		{"hours out of order", func(raw []byte) []byte {
			var d rollupDoc
			_ = json.Unmarshal(raw, &d)
			md := d.Meters[shared.MeterSession]
			md.Hours[0], md.Hours[1] = md.Hours[1], md.Hours[0]
			d.Meters[shared.MeterSession] = md
			b, _ := json.Marshal(d)
			return b
		}, true},
		{"window without samples", func(raw []byte) []byte {
			return []byte(strings.Replace(string(raw), `"samples":1`, `"samples":0`, 1))
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				dir := t.TempDir()
				s := openTest(t, dir, nil)
				mustSave(t, s, meterSnap("default", shared.MeterSession, reading{0, 10, time.Hour}))
				mustSave(t, s, meterSnap("default", shared.MeterSession, reading{2 * time.Hour, 20, 4 * time.Hour}))
				want := series(t, s, shared.MeterSession, t0.Add(-time.Hour), t0.Add(time.Hour*5))
				wantW := windows(t, s, shared.MeterSession, 0)
				_ = s.Close()
				if err := os.WriteFile(filepath.Join(dir, "default", RollupFile), tt.damage(valid(t, dir)), 0o600); err != nil {
					t.Fatal(err)
				}
				var logs testutil.LogBuffer
				s2 := openTest(t, dir, withLog(&logs))
				if got := series(t, s2, shared.MeterSession, t0.Add(-time.Hour), t0.Add(time.Hour*5)); !reflect.DeepEqual(got, want) {
					t.Errorf("series after rebuild = %v, want %v", got, want)
				}
				if got := windows(t, s2, shared.MeterSession, 0); !reflect.DeepEqual(got, wantW) {
					t.Errorf("windows after rebuild = %v, want %v", got, wantW)
				}
				if n := len(testutil.LogRecords(t, logs.String(), "rollup rebuilt from the versions")); n != 1 {
					t.Errorf("%d rebuild log lines, want 1:\n%s", n, logs.String())
				}
				ents, _ := os.ReadDir(filepath.Join(dir, "default", corruptDir))
				if got := len(ents) == 1; got != tt.quarantined {
					t.Errorf("quarantined = %v (%d files), want %v", got, len(ents), tt.quarantined)
				}
				if got, want := s2.Status().CorruptFiles, len(ents); got != want {
					t.Errorf("CorruptFiles = %d, want %d", got, want)
				}
				_ = s2.Close()
				if _, err := decodeRollup(valid(t, dir), "default"); err != nil {
					t.Errorf("the rebuilt file does not load: %v", err)
				}
			})
		})
	}
}

// Versions stored after the rollup file was written (the process died
// before the persist loop ran) are applied at Open, each exactly once.
func TestRollupCatchesUpAfterCrash(t *testing.T) {
	bubble(t, func(t *testing.T) {
		dir := t.TempDir()
		s := openTest(t, dir, nil)
		mustSave(t, s, meterSnap("default", shared.MeterSession, reading{0, 10, 4 * time.Hour}))
		_ = s.Close() // rollup written with throughSeq 1
		vdir := filepath.Join(dir, "default", versionsDir)
		for i, rd := range []reading{{time.Hour, 30, 4 * time.Hour}, {5 * time.Hour, 2, 9 * time.Hour}} {
			sn := meterSnap("default", shared.MeterSession, rd)
			r := record{Schema: recordSchema, ID: xid.New().String(), StoredAt: sn.ScrapedAt, Seq: uint64(i + 2), Snapshot: sn}
			data, _ := json.Marshal(r)
			if err := os.WriteFile(filepath.Join(vdir, fileName(sn.ScrapedAt, r.ID)), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(6 * time.Hour)
		for range 2 { // the second Open must not count them again
			s = openTest(t, dir, nil)
			got := windows(t, s, shared.MeterSession, 0)
			want := []shared.Window{{Meter: shared.MeterSession, Start: t0.Add(-time.Hour), ResetsAt: t0.Add(4 * time.Hour),
				PeakPercent: 30, FinalPercent: 30, Samples: 2}}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Windows = %+v, want %+v", got, want)
			}
			_ = s.Close()
		}
		if r := mustSave(t, openTest(t, dir, nil), meterSnap("default", shared.MeterSession, reading{7 * time.Hour, 3, 9 * time.Hour})); r.Number != 4 {
			t.Errorf("new version number = %d, want 4", r.Number)
		}
	})
}

func TestRollupKeepsHistoryDays(t *testing.T) {
	bubble(t, func(t *testing.T) {
		s := openTest(t, t.TempDir(), func(o *Options) { o.HistoryDays = 10; o.RetentionVersions = 1; o.RetentionDays = 1 })
		for d := range 20 {
			time.Sleep(time.Until(t0.Add(time.Duration(d) * 24 * time.Hour)))
			mustSave(t, s, meterSnap("default", shared.MeterSession, reading{at: time.Duration(d) * 24 * time.Hour, pct: 1,
				resets: time.Duration(d)*24*time.Hour + time.Hour}))
		}
		s.retain()
		pts := series(t, s, shared.MeterSession, t0.Add(-time.Hour), time.Now().Add(time.Hour))
		if got := len(pts); got != 11 {
			t.Errorf("%d points, want one a day for the last 10 days and today: %v", got, pts)
		}
		if got := len(windows(t, s, shared.MeterSession, 0)); got != 10 {
			t.Errorf("%d windows, want 10", got)
		}
		if got := len(windows(t, s, shared.MeterSession, 3)); got != 3 {
			t.Errorf("limit 3 gave %d windows", got)
		}
	})
}

func TestRollupBoundsMeters(t *testing.T) {
	bubble(t, func(t *testing.T) {
		var logs testutil.LogBuffer
		s := openTest(t, t.TempDir(), withLog(&logs))
		for i := range maxRollupMeters + 3 {
			mustSave(t, s, meterSnap("default", fmt.Sprintf("m%02d", i), reading{at: time.Duration(i) * time.Minute, pct: 1}))
		}
		if got := len(series(t, s, "m33", t0, t0.Add(time.Hour))); got != 1 {
			t.Errorf("m33 has %d points, want its version's 1", got)
		}
		s.mu.RLock()
		n := len(s.roll.rollups["default"].meters)
		s.mu.RUnlock()
		if n != maxRollupMeters {
			t.Errorf("rollup tracks %d meters, want %d", n, maxRollupMeters)
		}
		if got := len(testutil.LogRecords(t, logs.String(), "rollup tracks at most 32 meters per account; these meters get no history")); got != 3 {
			t.Errorf("%d warnings, want 3", got)
		}
	})
}

func TestSubscribe(t *testing.T) {
	bubble(t, func(t *testing.T) {
		s := openTest(t, t.TempDir(), nil)
		var got []string
		cancel := s.Subscribe(func(a string) { got = append(got, a) })
		ctx := context.Background()
		req := SaveRequest{Snapshot: snap("alice", t0, 1), IdempotencyKey: "k1", BodyHash: "h"}
		for range 2 { // the replay is not a new snapshot
			if _, err := s.Save(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		mustSave(t, s, snap("bob", t0, 1))
		if _, err := s.Save(ctx, SaveRequest{Snapshot: shared.Snapshot{Account: "alice"}}); err == nil {
			t.Fatal("an invalid snapshot was stored")
		}
		cancel()
		cancel()
		mustSave(t, s, snap("alice", t0.Add(time.Minute), 1))
		if want := []string{"alice", "bob"}; !reflect.DeepEqual(got, want) {
			t.Errorf("notified %v, want %v", got, want)
		}
	})
}

// A rollup that cannot be written is logged and written after the next
// save; the versions are stored all the same.
func TestRollupPersistFailure(t *testing.T) {
	bubble(t, func(t *testing.T) {
		var logs testutil.LogBuffer
		ffs := newFaultFS()
		dir := t.TempDir()
		s := openTest(t, dir, func(o *Options) { o.FS = ffs; withLog(&logs)(o) })
		ffs.Add(&testutil.Fault{Op: "Rename", Path: RollupFile, Err: syscall.ENOSPC, Times: 1})
		mustSave(t, s, meterSnap("default", shared.MeterSession, reading{0, 10, time.Hour}))
		time.Sleep(3 * rollupPersistDelay) // one attempt, no retry loop
		synctest.Wait()
		if got := len(testutil.LogRecords(t, logs.String(), "rollup not saved; retried after the next save, and rebuilt from the versions at start if still missing")); got != 1 {
			t.Fatalf("%d warnings after a failed rollup write, want 1:\n%s", got, logs.String())
		}
		if _, err := os.Stat(filepath.Join(dir, "default", RollupFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("rollup file after the failed write: %v", err)
		}
		mustSave(t, s, meterSnap("default", shared.MeterSession, reading{time.Minute, 20, time.Hour}))
		time.Sleep(2 * rollupPersistDelay)
		synctest.Wait()
		raw, err := os.ReadFile(filepath.Join(dir, "default", RollupFile))
		if err != nil {
			t.Fatalf("rollup not written after the next save: %v", err)
		}
		r, err := decodeRollup(raw, "default")
		if err != nil || r.throughSeq != 2 || r.meters[shared.MeterSession].windows[0].samples != 2 {
			t.Errorf("rollup file = %+v, %v; want both versions", r, err)
		}
	})
}
