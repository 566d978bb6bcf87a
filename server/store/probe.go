package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/claude-usage/widget/shared"
)

const (
	// ProbeStuckAfter is the one stuck-probe rule: a write check that has
	// not answered for this long makes Status report the storage as not
	// writable, for health and metrics alike, while the check goes on.
	ProbeStuckAfter = time.Second
	// RecoveryEvery is how often a write check runs while the breaker is
	// open; a passing one closes the breaker, so that writes resume within
	// this time of the disk having room again rather than after the whole
	// cooldown.
	RecoveryEvery = 5 * time.Second
)

type probeCall struct {
	done chan struct{}
	err  error
}

// CheckWritable implements Store: canWriteToStorage. Concurrent callers
// share one probe; a caller whose ctx ends stops waiting while the probe
// finishes in the background (a hung syscall cannot be interrupted).
func (s *FileStore) CheckWritable(ctx context.Context) error {
	// closeMu keeps a probe from starting once Close waits for background
	// work: a probe after Close would outlive the store.
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return shared.Errorf(shared.CodeStorageUnavailable, "storage: the store is closed")
	}
	p := s.startProbe()
	s.closeMu.RUnlock()
	return s.waitProbe(ctx, p)
}

// checkWritable is CheckWritable for a Save in flight: Close waits for
// saves before it waits for background work, so the probe may start even
// while Close is waiting.
func (s *FileStore) checkWritable(ctx context.Context) error {
	return s.waitProbe(ctx, s.startProbe())
}

// startProbe starts a probe or joins the one in flight.
func (s *FileStore) startProbe() *probeCall {
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

func (s *FileStore) waitProbe(ctx context.Context, p *probeCall) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return &shared.Error{
			Code:    shared.CodeStorageWriteFailed,
			Message: fmt.Sprintf("storage: write check of %s did not answer in time", s.dir),
			Err:     ctx.Err(),
		}
	}
}

func (s *FileStore) runProbe(p *probeCall) {
	defer s.bg.Done()
	var serr *shared.Error
	if err := s.retry(s.ctx, "probe", s.probeOnce); err != nil {
		serr = s.writeError("writing a probe file in", s.dir, err)
	}
	free, ferr := s.fs.Statfs(s.dir)
	s.stMu.Lock()
	was := s.writable || s.checkedAt.IsZero()
	if ferr == nil {
		s.freeBytes = free
	}
	if serr != nil {
		s.writable, s.writeErr, p.err = false, serr, serr
	} else {
		s.writable, s.writeErr = true, nil
	}
	s.checkedAt = time.Now()
	s.probe = nil
	s.stMu.Unlock()
	close(p.done)
	switch {
	case serr != nil && was:
		s.log.Error("storage not writable", "dir", s.dir, "code", string(serr.Code), "error", serr.Message)
	case serr == nil && !was:
		s.log.Info("storage writable again", "dir", s.dir)
	}
}

func (s *FileStore) probeOnce() error {
	if err := s.fs.MkdirAll(s.dir, 0o750); err != nil {
		return err
	}
	f, err := s.fs.CreateTemp(s.dir, probePrefix+"*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, werr := f.Write([]byte("usage-server write check\n"))
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	rerr := s.fs.Remove(name)
	return errors.Join(werr, cerr, rerr)
}

// recoveryLoop runs a write check every RecoveryEvery while the breaker is
// not closed, and closes it when one passes. Each check is bounded by the
// period, so a hung disk never stacks checks (they share one probe anyway).
func (s *FileStore) recoveryLoop() {
	defer s.bg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.opened:
		}
		if !s.recover() {
			return
		}
	}
}

// recover ticks until the breaker is closed; false when the store closes.
func (s *FileStore) recover() bool {
	t := time.NewTicker(RecoveryEvery)
	defer t.Stop()
	for s.breaker.State() != shared.StateClosed {
		select {
		case <-s.ctx.Done():
			return false
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, RecoveryEvery)
		err := s.checkWritable(ctx)
		cancel()
		if err == nil && s.breaker.State() != shared.StateClosed {
			s.log.Info("storage write check passed while the breaker was open; closing it", "dir", s.dir)
			s.breaker.Bypass()(true)
		}
	}
	return true
}
