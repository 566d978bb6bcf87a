package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

// TestMemoryAt10000Versions checks the index's share of the 40 MB RSS
// budget: 10 000 versions (three meters each) must fit in 15 MB of heap.
func TestMemoryAt10000Versions(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 10 000 fixture files; skipped with -short")
	}
	dir := t.TempDir()
	writeFixture(t, dir, "default", 10000, t0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, err := Open(context.Background(), Options{Dir: dir, Logger: testLogger(), RetentionVersions: 20000})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if got, want := s.Count("default"), 10000; got != want {
		t.Fatalf("Count = %d, want %d", got, want)
	}
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap for 10 000 versions: %.1f MB (%d bytes/version)", float64(heap)/1e6, heap/10000)
	if heap > 15<<20 {
		t.Errorf("index of 10 000 versions uses %d bytes of heap, want at most 15 MiB", heap)
	}
	runtime.KeepAlive(s)
}

func BenchmarkSave(b *testing.B) {
	s := openTest(b, b.TempDir(), func(o *Options) { o.RetentionVersions = 1 << 30 })
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Save(ctx, SaveRequest{Snapshot: snap("default", t0.Add(time.Duration(i)*time.Second), 1)}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchStore(b *testing.B, n int) *FileStore {
	b.Helper()
	dir := b.TempDir()
	writeFixture(b, dir, "default", n, t0)
	s := openTest(b, dir, func(o *Options) { o.RetentionVersions = 1 << 30 })
	if got := s.Count("default"); got != n {
		b.Fatalf("Count = %d, want %d", got, n)
	}
	return s
}

func BenchmarkReads(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{100, 1000, 10000} {
		s := benchStore(b, n)
		b.Run(fmt.Sprintf("Latest/%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Latest(ctx, "default"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("Nearest/%d", n), func(b *testing.B) {
			at := t0.Add(-time.Duration(n/3) * time.Minute).Add(17 * time.Second)
			for b.Loop() {
				if _, err := s.Nearest(ctx, "default", at); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("ByNumber/%d", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := s.ByNumber(ctx, "default", 1+i%n); err != nil {
					b.Fatal(err)
				}
			}
		})
		_ = s.Close()
	}
}

// BenchmarkOpen is the index rebuild at startup from the version files
// alone: a store at the default retention (a scrape every 5 min for 7 days
// is about 2 000 versions) and one five times that. make bench holds them
// to 60 ms and 300 ms.
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{2000, 10000} {
		b.Run(fmt.Sprintf("versions=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			writeFixture(b, dir, "default", n, t0)
			opts := Options{Dir: dir, Logger: testLogger(), RetentionVersions: 1 << 30}
			for b.Loop() {
				s, err := Open(context.Background(), opts)
				if err != nil {
					b.Fatal(err)
				}
				if got := s.Count("default"); got != n {
					b.Fatalf("Count = %d, want %d", got, n)
				}
				b.StopTimer()
				_ = s.Close()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkSeries400Days is GET …/history's store work at the longest
// range: 400 days of hourly rollup for the meter plus 10 000 kept versions
// (a week at one a minute), bucketed into the most points a query may ask
// for. Budget: 5 ms.
func BenchmarkSeries400Days(b *testing.B) {
	dir := b.TempDir()
	now := time.Now().UTC()
	writeFixture(b, dir, "default", 10000, now)
	writeRollupFixture(b, dir, "default", now, DefaultHistoryDays)
	s := openTest(b, dir, func(o *Options) { o.RetentionVersions = 1 << 30 })
	since, until := now.Add(-DefaultHistoryDays*24*time.Hour), now.Add(time.Minute)
	ctx := context.Background()
	pts, err := s.Series(ctx, "default", shared.MeterSession, since, until)
	if err != nil {
		b.Fatal(err)
	}
	if n := len(pts); n < DefaultHistoryDays*24 {
		b.Fatalf("series has %d points, want 400 days of hours at least", n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pts, err := s.Series(ctx, "default", shared.MeterSession, since, until)
		if err != nil {
			b.Fatal(err)
		}
		if _, out := shared.Bucket(pts, since, until, shared.MaxSeriesPoints); len(out) == 0 {
			b.Fatal("no buckets")
		}
	}
}

// writeRollupFixture writes a rollup file with every hour of days days
// ending at end, for the three meters of snap.
func writeRollupFixture(b testing.TB, dir, account string, end time.Time, days int) {
	b.Helper()
	d := rollupDoc{Format: rollupFormat, Account: account, Meters: map[string]meterDoc{}}
	first := hourOf(end.Add(-time.Duration(days) * 24 * time.Hour))
	for _, id := range []string{shared.MeterSession, shared.MeterWeeklyAll, shared.MeterWeeklySonnet} {
		var md meterDoc
		for h := first + 1; h <= hourOf(end); h++ {
			md.Hours = append(md.Hours, [3]float64{float64(h), float64(h % 101), 0})
		}
		d.Meters[id] = md
	}
	raw, err := json.Marshal(d)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, account, RollupFile), raw, 0o600); err != nil {
		b.Fatal(err)
	}
}
