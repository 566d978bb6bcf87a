package store

import (
	"encoding/json"
	"time"

	"github.com/claude-usage/widget/shared"
)

// Rollup is one account's rollup (the hourly maxima and windows history
// keeps beyond retention) for another backend to keep: the same
// bookkeeping, encoding and answers as the file store's.
type Rollup struct{ r *accountRollup }

// NewRollup returns an empty rollup.
func NewRollup() *Rollup { return &Rollup{r: newAccountRollup()} }

// DecodeRollup reads an encoded rollup of account; an error means it is
// damaged (or of another format) and must be rebuilt from the versions.
func DecodeRollup(raw []byte, account string) (*Rollup, error) {
	r, err := decodeRollup(raw, account)
	if err != nil {
		return nil, err
	}
	return &Rollup{r: r}, nil
}

// Encode is the rollup as the file store writes rollup.json.
func (r *Rollup) Encode(account string) ([]byte, error) { return json.Marshal(r.r.doc(account)) }

// Apply adds a stored version (seq: its arrival number) and trims what is
// older than historyDays. It returns the meters left out (more than the
// rollup tracks).
func (r *Rollup) Apply(seq uint64, snap shared.Snapshot, historyDays int, now time.Time) (skipped []string) {
	skipped = r.r.apply(&entry{seq: seq, snap: snap})
	r.r.trim(now.Add(-time.Duration(historyDays) * 24 * time.Hour))
	return skipped
}

// ThroughSeq is the highest seq applied.
func (r *Rollup) ThroughSeq() uint64 { return r.r.throughSeq }

// SetThroughSeq makes seq the rollup's through seq without applying
// anything: for a version that cannot be applied (corrupt) and for a copied
// rollup, whose seqs are the other store's.
func (r *Rollup) SetThroughSeq(seq uint64) { r.r.throughSeq = seq }

// Series is Store.Series from the rollup and raw, the kept versions'
// readings of meter in [since, until) oldest first; rawFrom is the oldest
// kept version's ScrapedAt (until when none is kept). r may be nil.
func (r *Rollup) Series(meter string, since, until, rawFrom time.Time, raw []shared.SeriesPoint) []shared.SeriesPoint {
	var ar *accountRollup
	if r != nil {
		ar = r.r
	}
	return ar.series(meter, since, until, rawFrom, raw)
}

// Windows is Store.Windows from the rollup at now. r may be nil.
func (r *Rollup) Windows(meter string, limit int, now time.Time) []shared.Window {
	var ar *accountRollup
	if r != nil {
		ar = r.r
	}
	return ar.windowsAt(meter, limit, now)
}

// CheckMeter is the meter check of Series and Windows.
func CheckMeter(meter string) error { return checkMeter(meter) }

// RollupOf is a copy of the account's rollup (nil when it has none), for
// copying the store elsewhere (usage-server migrate).
func (s *FileStore) RollupOf(account string) *Rollup {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.roll.rollups[account]
	if r == nil {
		return nil
	}
	c, err := decodeRollup(mustJSON(r.doc(account)), account)
	if err != nil {
		return nil
	}
	return &Rollup{r: c}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// CheckChannel is the delivery queues' check of a channel name, for every
// AlertStore.
func CheckChannel(channel string) error {
	_, err := queueFile(channel)
	return err
}
