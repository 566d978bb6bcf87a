package store

import (
	"context"
	"errors"

	"github.com/claude-usage/widget/shared"
)

// CheckWritable implements Store: canWriteToStorage, a probe file written,
// synced and removed in the data directory (WriteCheck shares it between
// callers).
func (s *FileStore) CheckWritable(ctx context.Context) error { return s.check.Check(ctx) }

// probe is the WriteCheck's Probe; the free bytes it measures are recorded
// with its result.
func (s *FileStore) probe(ctx context.Context) func() *shared.Error {
	var serr *shared.Error
	if err := s.retry(ctx, "probe", s.probeOnce); err != nil {
		serr = s.writeError("writing a probe file in", s.dir, err)
	}
	free, ferr := s.fs.Statfs(s.dir)
	return func() *shared.Error {
		if ferr == nil {
			s.freeBytes = free
		}
		return serr
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
