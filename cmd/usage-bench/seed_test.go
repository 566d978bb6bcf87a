//go:build linux

package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

func TestSeedStoreWritesVersionsTheServerLoads(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	span, err := seedStore(context.Background(), dir, 300, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := span[1].Sub(span[0]); got != 299*time.Minute || span[1].After(now) {
		t.Errorf("span %v..%v", span[0], span[1])
	}
	st, err := store.Open(context.Background(), store.Options{Dir: dir, RetentionVersions: 1000, RetentionDays: 36500,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n := st.Count(shared.DefaultAccount); n != 300 {
		t.Fatalf("reopened store holds %d versions, want 300", n)
	}
	v, err := st.Latest(context.Background(), shared.DefaultAccount)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Snapshot.ScrapedAt.Equal(span[1]) || len(v.Snapshot.Meters) != 3 {
		t.Errorf("latest %v with %d meters", v.Snapshot.ScrapedAt, len(v.Snapshot.Meters))
	}
	mid := span[0].Add(150*time.Minute + 20*time.Second)
	if v, err := st.Nearest(context.Background(), shared.DefaultAccount, mid); err != nil || !v.Snapshot.ScrapedAt.Equal(span[0].Add(150*time.Minute)) {
		t.Errorf("nearest to %v: %v, %v", mid, v.Snapshot.ScrapedAt, err)
	}
}

func TestSeedSnapshotsAreValid(t *testing.T) {
	at := time.Date(2026, 11, 20, 13, 7, 0, 0, time.UTC)
	for i := range 2000 {
		s := seedSnapshot(at.Add(time.Duration(i)*time.Minute), i)
		if err := s.Validate(at.Add(48 * time.Hour)); err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
	}
}
