package store

import (
	"errors"
	"io/fs"
	"path/filepath"
	"sort"
	"time"
)

// signalRetention asks the retention goroutine for a run; signals coalesce
// so that a burst of saves causes one run.
func (s *FileStore) signalRetention() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *FileStore) retentionLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
			s.retain()
		}
	}
}

type victim struct {
	account string
	e       *entry
}

// retain removes, per account, the versions that are neither among the
// newest RetentionVersions nor scraped within the last RetentionDays. The
// index is updated first, under a short lock, so reads never see a version
// whose file is gone; the files are removed afterwards without any lock.
func (s *FileStore) retain() {
	s.retMu.Lock()
	defer s.retMu.Unlock()
	cutoff := time.Now().Add(-time.Duration(s.opts.RetentionDays) * 24 * time.Hour)
	keepN := s.opts.RetentionVersions

	var victims []victim
	s.mu.Lock()
	for account, ix := range s.accounts {
		n := len(ix.entries)
		if n <= keepN {
			continue
		}
		recent := n - sort.Search(n, func(i int) bool { return !ix.entries[i].scrapedAt().Before(cutoff) })
		drop := n - max(keepN, recent)
		if drop <= 0 {
			continue
		}
		for _, e := range ix.entries[:drop] {
			victims = append(victims, victim{account, e})
			if e.key != "" {
				if ref, ok := s.idem[e.key]; ok && ref.e == e {
					delete(s.idem, e.key)
				}
			}
		}
		rest := make([]*entry, n-drop)
		copy(rest, ix.entries[drop:])
		ix.entries = rest
	}
	s.mu.Unlock()
	if len(victims) == 0 {
		return
	}

	removed := map[string]int{}
	for _, v := range victims {
		if s.ctx.Err() != nil {
			// Files left now are removed by the next run after Open.
			break
		}
		path := filepath.Join(s.dir, v.account, versionsDir, fileName(v.e.scrapedAt(), v.e.id))
		if err := s.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("retention could not remove a version", "path", path, "error", err.Error())
			continue
		}
		removed[v.account]++
	}
	for account, n := range removed {
		if err := s.fs.SyncDir(filepath.Join(s.dir, account, versionsDir)); err != nil {
			s.log.Warn("retention could not sync the directory", "account", account, "error", err.Error())
		}
		s.log.Info("retention removed old versions", "account", account, "removed", n,
			"keepVersions", keepN, "keepDays", s.opts.RetentionDays)
	}
}
