package pgstore

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
)

// retainSQL removes, per account, the versions that are neither among the
// newest $1 nor scraped at or after ($2, $3), and that the account's
// stored rollup covers; accounts with at most $1 versions are not even
// looked at.
const retainSQL = `
DELETE FROM usage_versions v
USING (SELECT seq, row_number() OVER (PARTITION BY account ORDER BY scraped_s DESC, scraped_ns DESC, seq DESC) AS rn
       FROM usage_versions
       WHERE account IN (SELECT account FROM usage_accounts WHERE versions > $1)) r
WHERE v.seq = r.seq AND r.rn > $1 AND (v.scraped_s, v.scraped_ns) < ($2, $3)
  AND v.seq <= (SELECT u.through_seq FROM usage_rollups u WHERE u.account = v.account)
RETURNING v.account`

// RetainGap is the least time between two retention runs of an instance:
// the file store's run after each save costs nothing, a database's costs a
// scan of the versions, and what it removes is old anyway.
const RetainGap = 10 * time.Second

// signalRetention asks the retention goroutine for a run; signals coalesce.
func (s *Store) signalRetention() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Store) retentionLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		}
		ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
		if _, err := s.retain(ctx, false); err != nil && s.ctx.Err() == nil {
			s.log.Warn("retention failed; it runs again after the next save", "error", err.Error())
		}
		cancel()
		if s.opts.onRetention != nil {
			s.opts.onRetention()
		}
		// Saves meanwhile are handled by one run at the end of the gap.
		t := time.NewTimer(s.opts.retainGap)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Retain runs retention now and returns the versions removed per account.
// It waits for a run another replica holds, then runs itself, so that what
// was stored before the call has been considered when it returns, and
// Count then leaves out every version removed by then (by any run).
func (s *Store) Retain(ctx context.Context) (map[string]int, error) { return s.retain(ctx, true) }

// retain runs retention one replica at a time (a transaction advisory
// lock). After a save, a replica that finds the lock taken skips its run:
// the holder does the work, and the next save runs it again. Deleting
// takes row locks on the removed rows only, so saves and reads go on
// meanwhile.
func (s *Store) retain(ctx context.Context, wait bool) (map[string]int, error) {
	// Only versions a stored rollup covers are removed (retainSQL), so
	// history never loses one, whatever order notices and runs come in.
	// This instance's rollups go first, with the versions it knows they
	// lack (one held for its predecessor, one no notice brought): what
	// it has seen is then removable at once.
	s.catchUpBehind(ctx)
	s.persistRollups(ctx)
	cutoff := time.Now().Add(-time.Duration(s.opts.RetentionDays) * 24 * time.Hour)
	cs, cns := split(cutoff)
	removed := map[string]int{}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		got := true
		if wait {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockRetention); err != nil {
				return err
			}
		} else if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", lockRetention).Scan(&got); err != nil || !got {
			return err
		}
		rows, err := tx.Query(ctx, retainSQL, s.opts.RetentionVersions, cs, cns)
		if err != nil {
			return err
		}
		var a string
		for rows.Next() {
			if err := rows.Scan(&a); err != nil {
				rows.Close()
				return err
			}
			removed[a]++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for a := range removed {
			payload, _ := json.Marshal(notice{Account: a, Origin: s.instance})
			if _, err := tx.Exec(ctx, "SELECT pg_notify('"+ChannelRetained+"', $1)", string(payload)); err != nil {
				return err
			}
		}
		// Probe rows of instances that stopped without Close.
		_, err = tx.Exec(ctx, "DELETE FROM usage_probe WHERE at < now() - interval '1 day'")
		return err
	})
	if err != nil {
		return nil, s.storageError("running retention", true, err)
	}
	if wait {
		// The run that held the lock before ours (this instance's own
		// background run, or another replica's) reloads its accounts only
		// after its commit, or announces them by a notice still on its
		// way, and ours then finds nothing left to remove. Reloading every
		// account here makes Count include each removal committed before
		// Retain returns.
		if err := s.refreshAll(ctx); err != nil {
			return removed, s.storageError("reloading the figures after retention", false, err)
		}
	}
	for a, n := range removed {
		if !wait {
			if err := s.refreshAccount(ctx, a); err != nil {
				s.log.Warn("retention could not reload an account's figures", "account", a, "error", err.Error())
			}
		}
		s.log.Info("retention removed old versions", "account", a, "removed", n,
			"keepVersions", s.opts.RetentionVersions, "keepDays", s.opts.RetentionDays)
	}
	return removed, nil
}
