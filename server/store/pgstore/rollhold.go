package pgstore

import (
	"slices"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// maxHeld bounds the versions held per account. One beyond it is
// dropped: the catch-up that markBehind asked for reads it from the
// database, like every other held one.
const maxHeld = 64

// rollHeld is a version whose predecessor prev the rollup lacks.
type rollHeld struct {
	seq, prev int64
	snap      shared.Snapshot
}

// hold keeps v until its predecessor is applied. The caller holds s.mu.
func (s *Store) hold(account string, v rollHeld) {
	if s.rollHeld == nil {
		s.rollHeld = make(map[string][]rollHeld)
	}
	held := s.rollHeld[account]
	for _, h := range held {
		if h.seq == v.seq {
			return
		}
	}
	if len(held) >= maxHeld {
		return
	}
	s.rollHeld[account] = append(held, v)
}

// applyHeld applies the held versions that now follow the rollup's
// through seq, in order, and forgets those it has. The caller holds s.mu.
func (s *Store) applyHeld(account string, r *store.Rollup) {
	held := s.rollHeld[account]
	for i := 0; i < len(held); {
		h, w := held[i], int64(r.ThroughSeq())
		switch {
		case h.seq <= w:
			held = slices.Delete(held, i, i+1)
		case h.prev == w:
			s.applyInOrder(account, r, []rollVersion{{seq: h.seq, snap: h.snap, ok: true}})
			held = slices.Delete(held, i, i+1)
			i = 0 // its successor may be held before it
		default:
			i++
		}
	}
	if len(held) == 0 {
		delete(s.rollHeld, account)
	} else {
		s.rollHeld[account] = held
	}
}
