package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"time"

	"github.com/claude-usage/widget/internal/atomicfile"
	"github.com/claude-usage/widget/shared"
)

// rollupFormat is the rollup file's layout; a file of another format is
// rebuilt from the versions, so changing the layout needs no migration.
const rollupFormat = 1

// rollupPersistDelay lets a burst of saves (an outbox draining) end in one
// write of the rollup file rather than one per snapshot.
const rollupPersistDelay = time.Second

// errRollupFormat marks a file of another format: replaced, not corrupt.
var errRollupFormat = errors.New("rollup file of another format")

type rollupDoc struct {
	Format     int                 `json:"format"`
	Account    string              `json:"account"`
	ThroughSeq uint64              `json:"throughSeq"`
	Meters     map[string]meterDoc `json:"meters"`
}

type meterDoc struct {
	// Hours are [Unix time / 3600, highest percentUsed, second of the hour
	// of the first reading], oldest first.
	Hours   [][3]float64 `json:"hours"`
	Windows []windowDoc  `json:"windows"`
}

type windowDoc struct {
	ResetsAt time.Time `json:"resetsAt"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	Peak     float64   `json:"peak"`
	Final    float64   `json:"final"`
	Samples  int       `json:"samples"`
}

func (r *accountRollup) doc(account string) rollupDoc {
	d := rollupDoc{Format: rollupFormat, Account: account, ThroughSeq: r.throughSeq, Meters: make(map[string]meterDoc, len(r.meters))}
	for id, mr := range r.meters {
		md := meterDoc{Hours: make([][3]float64, len(mr.hours)), Windows: make([]windowDoc, len(mr.windows))}
		for i, h := range mr.hours {
			md.Hours[i] = [3]float64{float64(h.hour), h.max, float64(h.first)}
		}
		for i, w := range mr.windows {
			md.Windows[i] = windowDoc{ResetsAt: w.resetsAt, First: w.first, Last: w.last, Peak: w.peak, Final: w.final, Samples: w.samples}
		}
		d.Meters[id] = md
	}
	return d
}

// Hours of 2000-01-01 and of 10000-01-01, the range every stored time has.
var (
	minHour = hourOf(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	maxHour = hourOf(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
)

func pctOK(p float64) bool { return !math.IsNaN(p) && p >= 0 && p <= 100 }

// decodeRollup parses and checks a rollup file. Any error but
// errRollupFormat means the file is damaged.
func decodeRollup(raw []byte, account string) (*accountRollup, error) {
	var d rollupDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if d.Format != rollupFormat {
		return nil, fmt.Errorf("%w: format %d, want %d", errRollupFormat, d.Format, rollupFormat)
	}
	if d.Account != account {
		return nil, fmt.Errorf("account %q does not match the directory", d.Account)
	}
	if len(d.Meters) > maxRollupMeters {
		return nil, fmt.Errorf("%d meters, at most %d", len(d.Meters), maxRollupMeters)
	}
	r := newAccountRollup()
	r.throughSeq = d.ThroughSeq
	for id, md := range d.Meters {
		if !shared.MeterIDPattern.MatchString(id) {
			return nil, fmt.Errorf("meter id %q is invalid", id)
		}
		mr := &meterRollup{hours: make([]hourPoint, len(md.Hours)), windows: make([]windowRec, len(md.Windows))}
		for i, h := range md.Hours {
			if h[0] < float64(minHour) || h[0] >= float64(maxHour) || h[0] != math.Trunc(h[0]) || !pctOK(h[1]) ||
				h[2] < 0 || h[2] >= 3600 || h[2] != math.Trunc(h[2]) || (i > 0 && int32(h[0]) <= mr.hours[i-1].hour) {
				return nil, fmt.Errorf("meter %s: hour %d is invalid or out of order", id, i)
			}
			mr.hours[i] = hourPoint{hour: int32(h[0]), first: int32(h[2]), max: h[1]}
		}
		for i, w := range md.Windows {
			ok := timeInRange(w.ResetsAt) && timeInRange(w.First) && !w.Last.Before(w.First) &&
				w.Last.Before(w.ResetsAt) && w.Samples >= 1 && pctOK(w.Peak) && pctOK(w.Final) && w.Final <= w.Peak &&
				(i == 0 || !w.ResetsAt.Before(md.Windows[i-1].ResetsAt))
			if !ok {
				return nil, fmt.Errorf("meter %s: window %d is invalid or out of order", id, i)
			}
			mr.windows[i] = windowRec{resetsAt: w.ResetsAt.UTC(), first: w.First.UTC(), last: w.Last.UTC(),
				peak: w.Peak, final: w.Final, samples: w.Samples}
		}
		r.meters[id] = mr
	}
	return r, nil
}

// loadRollup reads an account's rollup at Open, or rebuilds it from the
// versions (ix may be nil: no versions). The caller is Open: no lock.
func (s *FileStore) loadRollup(account string, ix *accountIndex) {
	var entries []*entry
	if ix != nil {
		entries = ix.entries
	}
	path := filepath.Join(s.dir, account, RollupFile)
	raw, err := s.fs.ReadFile(path)
	var r *accountRollup
	reason := ""
	switch {
	case errors.Is(err, fs.ErrNotExist):
		reason = "missing"
	case err != nil:
		reason = "unreadable: " + errnoText(err)
	default:
		r, err = decodeRollup(raw, account)
		if err != nil {
			reason = err.Error()
			if !errors.Is(err, errRollupFormat) {
				s.quarantineRollup(account, err)
			}
		}
	}
	if r == nil {
		if len(entries) == 0 && reason == "missing" {
			return // an account with a scraper status only
		}
		r = newAccountRollup()
		for _, e := range entries {
			r.apply(e)
		}
		s.roll.dirty[account] = true
		level := slog.LevelWarn
		if reason == "missing" {
			level = slog.LevelInfo // a store from before rollups, or a file removed on purpose
		}
		s.log.Log(context.Background(), level, "rollup rebuilt from the versions", "account", account, "reason", reason, "versions", len(entries))
	} else {
		// Versions stored after the file was last written (the server
		// stopped before the persist loop ran) are applied in arrival
		// order, as they were the first time.
		var late []*entry
		for _, e := range entries {
			if e.seq > r.throughSeq {
				late = append(late, e)
			}
		}
		slices.SortFunc(late, func(a, b *entry) int { return cmp.Compare(a.seq, b.seq) })
		for _, e := range late {
			r.apply(e)
		}
		if len(late) > 0 {
			s.roll.dirty[account] = true
			s.log.Info("rollup caught up with versions stored after it was saved", "account", account, "versions", len(late))
		}
	}
	r.trim(s.roll.cutoff(time.Now()))
	s.roll.rollups[account] = r
	// A seq at or below throughSeq would be skipped at the next Open.
	if r.throughSeq >= s.nextSeq {
		s.nextSeq = r.throughSeq + 1
	}
}

// quarantineRollup moves a damaged rollup file to <account>/corrupt/ before
// it is rebuilt: it may hold history the versions no longer have.
func (s *FileStore) quarantineRollup(account string, why error) {
	src := filepath.Join(s.dir, account, RollupFile)
	cdir := filepath.Join(s.dir, account, corruptDir)
	dst := filepath.Join(cdir, fmt.Sprintf("%s.%d", RollupFile, time.Now().UnixNano()))
	err := s.fs.MkdirAll(cdir, 0o750)
	if err == nil {
		err = s.fs.Rename(src, dst)
	}
	s.corrupt++
	if err != nil {
		s.log.Error("damaged rollup file could not be moved; it is replaced", "path", src, "reason", why.Error(), "error", err.Error())
		return
	}
	s.log.Error("damaged rollup file moved to quarantine", "path", src, "to", dst, "reason", why.Error())
}

// rollupLoop writes dirty rollups a moment after a save, and once more
// when the store closes (Close has waited for the saves by then).
func (s *FileStore) rollupLoop() {
	for {
		select {
		case <-s.ctx.Done():
			s.persistRollups()
			return
		case <-s.roll.kick:
		}
		t := time.NewTimer(rollupPersistDelay)
		select {
		case <-s.ctx.Done():
			t.Stop()
			s.persistRollups()
			return
		case <-t.C:
		}
		s.persistRollups()
	}
}

// persistRollups writes every dirty rollup once. A failed write leaves
// the account dirty for the next save's run: the file is derived data, so
// a failure loses nothing that Open cannot rebuild.
func (s *FileStore) persistRollups() {
	s.mu.Lock()
	docs := make([]rollupDoc, 0, len(s.roll.dirty))
	for account := range s.roll.dirty {
		if r := s.roll.rollups[account]; r != nil {
			docs = append(docs, r.doc(account))
		}
		delete(s.roll.dirty, account)
	}
	s.mu.Unlock()
	for _, d := range docs {
		adir := filepath.Join(s.dir, d.Account)
		data, err := json.Marshal(d)
		if err == nil {
			if err = s.fs.MkdirAll(adir, 0o750); err == nil {
				_, err = atomicfile.WriteFS(s.fs, filepath.Join(adir, RollupFile), append(data, '\n'), 0o600)
			}
		}
		if err != nil {
			s.mu.Lock()
			s.roll.dirty[d.Account] = true
			s.mu.Unlock()
			s.log.Warn("rollup not saved; retried after the next save, and rebuilt from the versions at start if still missing",
				"account", d.Account, "error", err.Error())
		}
	}
}
