package pgstore

import (
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
	for len(held) > 0 {
		w := int64(r.ThroughSeq())
		next := -1
		kept := held[:0]
		for i, h := range held {
			switch {
			case h.seq <= w:
			case h.prev == w && next < 0:
				next = len(kept)
				kept = append(kept, held[i])
			default:
				kept = append(kept, h)
			}
		}
		held = kept
		if next < 0 {
			break
		}
		s.applyInOrder(account, r, []rollVersion{{seq: held[next].seq, snap: held[next].snap, ok: true}})
		held = append(held[:next], held[next+1:]...)
	}
	if len(held) == 0 {
		delete(s.rollHeld, account)
	} else {
		s.rollHeld[account] = held
	}
}
