package pgstore

import (
	"context"

	"github.com/claude-usage/widget/server/store"
)

// Each instance keeps every account's latest version as it last read or
// stored it, so that GET latest (the widget's poll and every stream event)
// costs no round trip. It is dropped whenever the account changes: a save
// here, a NOTIFY from another replica (a save or a retention run), or a
// periodic reload that finds other figures. Between another replica's
// commit and its NOTIFY (milliseconds) this instance still answers the
// previous latest, as a reader that asked a moment earlier would have
// seen it.

// cachedLatest returns the account's cached latest version (a copy) and
// the generation a fill must match.
func (s *Store) cachedLatest(account string) (store.Version, uint64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.latest[account]
	if ok {
		v.Snapshot = store.CloneSnapshot(v.Snapshot)
	}
	return v, s.latestGen[account], ok
}

// fillLatest keeps v unless the account changed since gen was read.
func (s *Store) fillLatest(account string, v store.Version, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latestGen[account] == gen {
		v.Snapshot = store.CloneSnapshot(v.Snapshot)
		s.latest[account] = v
	}
}

// dropLatest forgets the account's latest version; the caller holds s.mu.
func (s *Store) dropLatest(account string) {
	delete(s.latest, account)
	s.latestGen[account]++
}

func (s *Store) dropLatestLocked(account string) {
	s.mu.Lock()
	s.dropLatest(account)
	s.mu.Unlock()
}

// readLatest is Latest's database query.
func (s *Store) readLatest(ctx context.Context, account string) (store.Version, error) {
	v, gen, ok := s.cachedLatest(account)
	if ok {
		return v, nil
	}
	v, err := s.queryLatest(ctx, account)
	if err == nil {
		s.fillLatest(account, v, gen)
	}
	return v, err
}
