package pgstore

import (
	"context"
	"time"

	"github.com/claude-usage/widget/shared"
)

// probeTimeout bounds one write check; the caller's context may give up
// sooner while the check finishes in the background.
const probeTimeout = 5 * time.Second

type probeCall struct {
	done chan struct{}
	err  error
}

// CheckWritable implements store.Store: it writes this instance's probe
// row (a committed write, so a full disk or a read-only database fails it)
// and reads the schema version. Concurrent callers share one check.
func (s *Store) CheckWritable(ctx context.Context) error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return shared.Errorf(shared.CodeStorageUnavailable, "storage: the store is closed")
	}
	p := s.startProbe()
	s.closeMu.RUnlock()
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return &shared.Error{Code: shared.CodeStorageUnavailable,
			Message: "storage: write check of " + s.where + " did not answer in time", Err: ctx.Err()}
	}
}

func (s *Store) startProbe() *probeCall {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	if s.probe == nil {
		s.probe = &probeCall{done: make(chan struct{})}
		s.probeStart = time.Now()
		s.bg.Add(1)
		go s.runProbe(s.probe)
	}
	return s.probe
}

func (s *Store) runProbe(p *probeCall) {
	defer s.bg.Done()
	// Open runs the first check before s.ctx exists.
	base := s.ctx
	if base == nil {
		base = context.Background()
	}
	ctx, cancel := context.WithTimeout(base, probeTimeout)
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
	s.stMu.Lock()
	was := s.writable || s.checkedAt.IsZero()
	s.db.Reachable = err == nil || classify(err) != kindUnavailable
	s.db.Latency = took
	if err == nil {
		s.db.SchemaVersion = ver
		s.writable, s.writeErr = true, nil
		if !s.db.MigrationsCurrent() {
			s.writable = false
			s.writeErr = shared.Errorf(shared.CodeStorageUnavailable,
				"storage: the database schema is at version %d, this binary expects %d", ver, s.db.SchemaWanted)
			serr = s.writeErr.(*shared.Error)
		}
	} else {
		s.writable, s.writeErr = false, serr
	}
	if serr != nil {
		p.err = serr
	}
	s.checkedAt = time.Now()
	s.probe = nil
	s.stMu.Unlock()
	close(p.done)
	switch {
	case serr != nil && was:
		s.log.Error("storage not writable", "database", s.where, "code", string(serr.Code), "error", serr.Message)
	case serr == nil && !was:
		s.log.Info("storage writable again", "database", s.where)
	}
}

// recoveryLoop runs a write check every store.RecoveryEvery while the
// breaker is not closed, and closes it when one passes.
func (s *Store) recoveryLoop() {
	defer s.bg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.opened:
		}
		t := time.NewTicker(s.opts.recoverEvery)
		for s.breaker.State() != shared.StateClosed {
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(s.ctx, s.opts.recoverEvery)
			err := s.CheckWritable(ctx)
			cancel()
			if err == nil && s.breaker.State() != shared.StateClosed {
				s.log.Info("database write check passed while the breaker was open; closing it", "database", s.where)
				s.breaker.Bypass()(true)
			}
		}
		t.Stop()
	}
}
