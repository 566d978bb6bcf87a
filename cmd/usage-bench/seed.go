//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/xid"

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

// seedStore writes n versions as the file store keeps them (the README's
// data directory: <account>/versions/<UTC scrapedAt>-<xid>.json, one
// record per file), without the store's fsyncs: durability is irrelevant
// for a throwaway directory and 10 000 fsyncs would dominate the run. The
// layout is the store's on-disk format, which existing data directories
// depend on; TestSeedStoreWritesVersionsTheServerLoads opens the result
// with the real store.
func seedStore(ctx context.Context, dir string, n int, now time.Time) ([2]time.Time, error) {
	var span [2]time.Time
	if n < 1 {
		return span, fmt.Errorf("bench: -versions must be at least 1, got %d", n)
	}
	vdir := filepath.Join(dir, shared.DefaultAccount, "versions")
	if err := os.MkdirAll(vdir, 0o700); err != nil {
		return span, fmt.Errorf("bench: seed store: %w", err)
	}
	last := now.Add(-time.Minute).Truncate(time.Second).UTC()
	first := last.Add(-time.Duration(n-1) * time.Minute)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return span, err
		}
		snap := seedSnapshot(first.Add(time.Duration(i)*time.Minute), i)
		stored := snap.ScrapedAt.Add(2 * time.Second) // as if synced right after the scrape
		rec := seedRecord{Schema: 1, ID: xid.NewWithTime(stored).String(), StoredAt: stored, Seq: uint64(i + 1), Snapshot: snap}
		data, err := json.Marshal(rec)
		if err != nil {
			return span, fmt.Errorf("bench: seeding version %d: %w", i+1, err)
		}
		name := snap.ScrapedAt.Format(seedTimeLayout) + "-" + rec.ID + ".json"
		if err := os.WriteFile(filepath.Join(vdir, name), data, 0o600); err != nil {
			return span, fmt.Errorf("bench: seeding version %d: %w", i+1, err)
		}
	}
	return [2]time.Time{first, last}, nil
}

// seedTimeLayout is the fixed-width UTC time that starts a version file's
// name, so that names sort in scrapedAt order.
const seedTimeLayout = "20060102T150405.000000000Z"

// seedRecord is one version file: the snapshot and what the store rebuilds
// its index from (arrival order, id).
type seedRecord struct {
	Schema   int             `json:"schema"`
	ID       string          `json:"id"`
	StoredAt time.Time       `json:"storedAt"`
	Seq      uint64          `json:"seq"`
	Snapshot shared.Snapshot `json:"snapshot"`
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
