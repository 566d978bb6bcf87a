package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/claude-usage/widget/server/store"
)

// remoteSQL reads the version another replica announced, with what the
// rollup needs to place it.
const remoteSQL = "SELECT " + cols + ", v.prev_seq FROM usage_versions v WHERE v.id = $1"

// applySaved handles another replica's save notice in one round trip: the
// account's figures and the announced version, read in one batch. With
// two replicas behind a balancer every save costs the other one this, so
// it is one query and not three (the figures, the version for the
// rollup, then the latest version again for the streams and the alert
// engine the notice wakes): when the announced version is the account's
// latest, it becomes the cached latest.
func (s *Store) applySaved(ctx context.Context, account, id string) error {
	s.reloadMu.Lock()
	gen := s.currentGen()
	b := &pgx.Batch{}
	b.Queue(figuresSQL, account)
	b.Queue(remoteSQL, id)
	br := s.pool.SendBatch(ctx, b)
	rows, err := br.Query()
	var fig map[string]accountFigures
	var lasts map[string]int64
	if err == nil {
		fig, lasts, err = scanFigures(rows)
	}
	var r row
	var prev *int64
	found := false
	if err == nil {
		err = br.QueryRow().Scan(r.dest(&prev)...)
		found = err == nil
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil // removed meanwhile
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.reloadMu.Unlock()
		return err
	}
	s.apply(fig, gen, account)
	s.reloadMu.Unlock()
	if found {
		if snap, err := r.decode(); err == nil { // a corrupt row is quarantined by the next read of it
			s.applyRollup(ctx, r.account, r.seq, prev, snap)
			f := fig[account]
			if f.latestID == r.id {
				s.keepLatest(account, store.Version{ID: r.id, Number: f.count, Total: f.count, StoredAt: r.storedAt.UTC(), Snapshot: snap})
			}
		}
	}
	// After the rollup took the version: an account is marked behind only
	// if it still lacks one.
	s.noteLastSeqs(lasts)
	return nil
}

// keepLatest caches v as the account's latest version if the figures this
// instance holds now say it is (a save here meanwhile may have moved them
// on).
func (s *Store) keepLatest(account string, v store.Version) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.accounts[account]; f.latestID == v.ID && f.count == v.Total {
		v.Snapshot = store.CloneSnapshot(v.Snapshot)
		s.latest[account] = v
	}
}
