package pgstore

import (
	"context"
	"errors"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// Each instance keeps every account's latest version as it last read or
// stored it, so that GET latest (the widget's poll and every stream event)
// costs no round trip. It is replaced whenever another version becomes the
// account's latest (a save here, or another replica's, whose notice brings
// the version along) and dropped when the figures change in a way it
// cannot follow (a retention run, a periodic reload that finds another
// latest); a version older than the latest only changes its number and
// total. Between another replica's commit and its NOTIFY (milliseconds)
// this instance still answers the previous latest, as a reader that asked
// a moment earlier would have seen it. A read that goes to the database
// and finds other figures there reloads them before it returns: Count and
// Accounts never lag behind a latest version this instance answered.

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

// recountLatest gives the account's cached latest version, still the
// latest, the account's new count (the latest's number is the count); a
// fill read before is refused, as after dropLatest. The caller holds s.mu.
func (s *Store) recountLatest(account string, count int) {
	s.latestGen[account]++
	if v, ok := s.latest[account]; ok {
		v.Number, v.Total = count, count
		s.latest[account] = v
	}
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
	if err != nil {
		var se *shared.Error
		if errors.As(err, &se) && se.Code == shared.CodeNoData && s.Count(account) > 0 {
			s.reloadAccount(ctx, account)
		}
		return v, err
	}
	if s.figuresDiffer(account, v) {
		// Usually another replica's save or retention whose notice is on
		// its way. Not kept: the next read, with the figures caught up,
		// keeps its answer.
		s.reloadAccount(ctx, account)
		return v, nil
	}
	s.fillLatest(account, v, gen)
	return v, nil
}

// figuresDiffer says whether v, read from the database, is not the latest
// version and total the account's figures hold.
func (s *Store) figuresDiffer(account string, v store.Version) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f := s.accounts[account]
	return f.count != v.Total || f.latestID != v.ID
}

// reloadAccount reloads the account's figures for readLatest; after a
// failure the notice and the periodic reload still catch them up.
func (s *Store) reloadAccount(ctx context.Context, account string) {
	if err := s.refreshAccount(ctx, account); err != nil && s.ctx.Err() == nil {
		s.log.Debug("could not reload an account's figures after reading its latest version", "account", account, "error", err.Error())
	}
}
