package pgstore

import (
	"context"
	"time"

	"github.com/claude-usage/widget/shared"
)

// probeTimeout bounds one write check; the caller's context may give up
// sooner while the check finishes in the background.
const probeTimeout = 5 * time.Second

// CheckWritable implements store.Store: it writes this instance's probe
// row (a committed write, so a full disk or a read-only database fails it)
// and reads the schema version. Concurrent callers share one check.
func (s *Store) CheckWritable(ctx context.Context) error { return s.check.Check(ctx) }

// probe is the WriteCheck's Probe. What it learns of the database
// (reachable, latency, schema version) is recorded with its result, and a
// schema this binary does not expect makes the store not writable.
func (s *Store) probe(ctx context.Context) func() *shared.Error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	start := time.Now()
	var ver int
	err := s.retry(ctx, "probe", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `INSERT INTO usage_probe (instance, at) VALUES ($1, now())
			ON CONFLICT (instance) DO UPDATE SET at = now()
			RETURNING (SELECT coalesce(max(version), 0) FROM usage_schema_migrations)`, s.instance).Scan(&ver)
	})
	took := time.Since(start)
	var serr *shared.Error
	if err != nil {
		serr = s.storageError("writing the probe row", true, err)
	}
	return func() *shared.Error {
		s.db.Reachable = err == nil || classify(err) != kindUnavailable
		s.db.Latency = took
		if err != nil {
			return serr
		}
		s.db.SchemaVersion = ver
		if !s.db.MigrationsCurrent() {
			return shared.Errorf(shared.CodeStorageUnavailable,
				"storage: the database schema is at version %d, this binary expects %d", ver, s.db.SchemaWanted)
		}
		return nil
	}
}
