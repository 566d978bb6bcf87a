package pgstore

import (
	"log/slog"
	"testing"
	"time"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/store/storetest"
)

// TestHeldVersionsApplyInSeqOrder: versions held in any order go into
// the rollup in seq order once the gap before them is filled, and those
// the rollup has by then are forgotten.
func TestHeldVersionsApplyInSeqOrder(t *testing.T) {
	s := &Store{log: slog.New(slog.DiscardHandler), rollDirty: map[string]bool{}, opts: Options{HistoryDays: 400}}
	r := store.NewRollup()
	r.SetThroughSeq(2)
	at := time.Now().Add(-time.Hour).UTC()
	snap := func(i int) rollHeld {
		return rollHeld{seq: int64(i), prev: int64(i - 1), snap: storetest.Snap("a", at.Add(time.Duration(i)*time.Minute), float64(10*i))}
	}
	s.hold("a", snap(6))
	s.hold("a", snap(5))
	s.hold("a", snap(5)) // twice: kept once
	s.hold("a", rollHeld{seq: 2, prev: 1})
	s.hold("a", snap(9)) // its predecessor never comes
	s.applyHeld("a", r)
	if got, want := len(s.rollHeld["a"]), 3; got != want || r.ThroughSeq() != 2 {
		t.Fatalf("with seq 3 and 4 missing: %d held, through %d; want %d held (the one already in the rollup forgotten), through 2", got, r.ThroughSeq(), want)
	}
	r.Apply(3, snap(3).snap, 400, time.Now())
	r.Apply(4, snap(4).snap, 400, time.Now())
	s.applyHeld("a", r)
	if got, want := r.ThroughSeq(), uint64(6); got != want {
		t.Errorf("through %d, want %d", got, want)
	}
	if h := s.rollHeld["a"]; len(h) != 1 || h[0].seq != 9 {
		t.Errorf("held %+v, want only seq 9", h)
	}
	pts := r.Series("session", at.Add(-2*time.Hour), time.Now(), time.Now(), nil)
	if len(pts) == 0 || pts[len(pts)-1].PercentUsed != 60 {
		t.Errorf("series %+v, want its last hour's maximum 60 (seq 6's)", pts)
	}
}
