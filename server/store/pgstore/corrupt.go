package pgstore

import (
	"context"
	"errors"
)

// quarantineCorrupt checks every version row at Open, as the file store
// checks every file, and moves those that do not decode or validate.
func (s *Store) quarantineCorrupt(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, "SELECT "+cols+" FROM usage_versions v")
	if err != nil {
		return err
	}
	var r row
	var bad []*corruptError
	for rows.Next() {
		if err := rows.Scan(r.dest()...); err != nil {
			rows.Close()
			return err
		}
		var ce *corruptError
		if _, err := r.decode(); errors.As(err, &ce) {
			bad = append(bad, ce)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, ce := range bad {
		s.quarantine(ctx, ce.seq, ce.reason)
	}
	return nil
}

// quarantine moves one row to usage_corrupt_versions; another replica
// doing the same at once is harmless.
func (s *Store) quarantine(ctx context.Context, seq int64, reason string) {
	tag, err := s.pool.Exec(ctx, `
		WITH m AS (DELETE FROM usage_versions WHERE seq = $1 RETURNING seq, id, account, snapshot)
		INSERT INTO usage_corrupt_versions (seq, id, account, reason, snapshot)
		SELECT seq, id, account, $2, snapshot FROM m ON CONFLICT (seq) DO NOTHING`, seq, reason)
	if err != nil {
		s.log.Error("corrupt version row could not be moved; it is skipped", "seq", seq, "reason", reason, "error", err.Error())
		return
	}
	if tag.RowsAffected() > 0 {
		s.mu.Lock()
		s.corrupt++
		s.mu.Unlock()
	}
	s.log.Error("corrupt version row moved to quarantine", "seq", seq, "to", "usage_corrupt_versions", "reason", reason)
}
