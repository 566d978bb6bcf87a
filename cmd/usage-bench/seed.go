package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// The http and rss sections read the same seeded store; it is written once
// per run.
var (
	seedOnce sync.Once
	seedDir  string
	seedErr  error
	seedSpan [2]time.Time // ScrapedAt of the oldest and newest version
)

// seededDataDir returns a data dir holding env.Versions versions for the
// default account, one minute apart and ending a minute ago.
func seededDataDir(ctx context.Context, env *Env) (string, [2]time.Time, error) {
	seedOnce.Do(func() {
		dir := filepath.Join(env.TmpDir, "data")
		start := time.Now()
		seedSpan, seedErr = seedStore(ctx, dir, env.Versions, time.Now())
		if seedErr == nil {
			seedDir = dir
			env.Logf("seeded %d versions in %s", env.Versions, time.Since(start).Round(time.Millisecond))
		}
	})
	return seedDir, seedSpan, seedErr
}

// seedStore writes n versions through the store's own Save, so the files
// are exactly what a server writes, but without fsync: durability is
// irrelevant for a throwaway directory and 10 000 fsyncs would dominate the
// run.
func seedStore(ctx context.Context, dir string, n int, now time.Time) ([2]time.Time, error) {
	var span [2]time.Time
	if n < 1 {
		return span, fmt.Errorf("bench: -versions must be at least 1, got %d", n)
	}
	st, err := store.Open(ctx, store.Options{
		Dir:               dir,
		FS:                noSyncFS{store.OSFS()},
		RetentionVersions: n + 1000, // retention must not remove what is seeded
		RetentionDays:     36500,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return span, fmt.Errorf("bench: opening the seed store: %w", err)
	}
	last := now.Add(-time.Minute).Truncate(time.Second).UTC()
	first := last.Add(-time.Duration(n-1) * time.Minute)
	for i := range n {
		if err := ctx.Err(); err != nil {
			_ = st.Close()
			return span, err
		}
		snap := seedSnapshot(first.Add(time.Duration(i)*time.Minute), i)
		if _, err := st.Save(ctx, store.SaveRequest{Snapshot: snap}); err != nil {
			_ = st.Close()
			return span, fmt.Errorf("bench: seeding version %d: %w", i+1, err)
		}
	}
	if err := st.Close(); err != nil {
		return span, fmt.Errorf("bench: closing the seed store: %w", err)
	}
	return [2]time.Time{first, last}, nil
}

// seedSnapshot looks like a scrape of the real page: the session meter
// resets every 5 hours and the weekly ones every 7 days, the percentages
// climb within each window, and the labels are the page's.
func seedSnapshot(at time.Time, i int) shared.Snapshot {
	session := at.Truncate(5 * time.Hour).Add(5 * time.Hour)
	week := at.Truncate(7 * 24 * time.Hour).Add(7 * 24 * time.Hour)
	inSession := float64(at.Sub(session.Add(-5*time.Hour))) / float64(5*time.Hour)
	inWeek := float64(at.Sub(week.Add(-7*24*time.Hour))) / float64(7*24*time.Hour)
	pct := func(f float64) float64 { return math.Round(min(f, 1)*1000) / 10 }
	return shared.Snapshot{
		Account:   shared.DefaultAccount,
		ScrapedAt: at,
		Source:    "claude.ai/settings/usage",
		Capture:   shared.CaptureAPI,
		Meters: []shared.Meter{
			{ID: shared.MeterSession, Label: "Current session", PercentUsed: pct(inSession * 0.9), ResetsAt: &session,
				ResetsText: fmt.Sprintf("Resets in %d hr %d min", int(session.Sub(at).Hours()), int(session.Sub(at).Minutes())%60)},
			{ID: shared.MeterWeeklyAll, Label: "All models", PercentUsed: pct(inWeek * 0.7), ResetsAt: &week,
				ResetsText: "Resets " + week.Format("Mon 3:04 PM")},
			{ID: shared.MeterWeeklySonnet, Label: "Sonnet only", PercentUsed: pct(inWeek * 0.4), ResetsAt: &week,
				ResetsText: "Resets " + week.Format("Mon 3:04 PM")},
		},
		ExtraUsage: &shared.ExtraUsage{Enabled: true, UsedCents: int64(i % 5000), LimitCents: 5000, Currency: "USD"},
	}
}

// noSyncFS is the real filesystem with fsync turned off.
type noSyncFS struct{ store.FS }

func (f noSyncFS) CreateTemp(dir, pattern string) (store.File, error) {
	file, err := f.FS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return noSyncFile{file}, nil
}

func (noSyncFS) SyncDir(string) error { return nil }

type noSyncFile struct{ store.File }

func (noSyncFile) Sync() error { return nil }
