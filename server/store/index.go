package store

import (
	"sort"
	"time"

	"github.com/claude-usage/widget/shared"
)

// entry is one version in memory. Snapshots are kept decoded (with common
// strings interned) so that no read touches the disk; at 10 000 versions
// this is a few MB (see TestMemoryAt10000Versions).
type entry struct {
	id       string
	seq      uint64
	storedAt time.Time
	key      string
	hash     string
	snap     shared.Snapshot
}

func (e *entry) scrapedAt() time.Time { return e.snap.ScrapedAt }

// before is the index order: ScrapedAt, then arrival.
func (e *entry) before(o *entry) bool {
	if !e.snap.ScrapedAt.Equal(o.snap.ScrapedAt) {
		return e.snap.ScrapedAt.Before(o.snap.ScrapedAt)
	}
	if e.seq != o.seq {
		return e.seq < o.seq
	}
	return e.id < o.id
}

// accountIndex holds one account's versions sorted by (ScrapedAt, seq).
type accountIndex struct {
	entries []*entry
}

// insert adds e in order and returns its position. Inserting at the end (the
// usual case) is O(1); a late snapshot costs one copy.
func (ix *accountIndex) insert(e *entry) int {
	n := len(ix.entries)
	i := n
	if n > 0 && e.before(ix.entries[n-1]) {
		i = sort.Search(n, func(i int) bool { return e.before(ix.entries[i]) })
	}
	ix.entries = append(ix.entries, nil)
	copy(ix.entries[i+1:], ix.entries[i:])
	ix.entries[i] = e
	return i
}

// position finds e by binary search; -1 when it is not in the index.
func (ix *accountIndex) position(e *entry) int {
	n := len(ix.entries)
	i := sort.Search(n, func(i int) bool { return !ix.entries[i].before(e) })
	if i < n && ix.entries[i] == e {
		return i
	}
	return -1
}

// nearest returns the position of the entry whose ScrapedAt is nearest to t;
// on a tie the older one. The index must not be empty.
func (ix *accountIndex) nearest(t time.Time) int {
	n := len(ix.entries)
	i := sort.Search(n, func(i int) bool { return !ix.entries[i].scrapedAt().Before(t) })
	if i == n || (i > 0 && t.Sub(ix.entries[i-1].scrapedAt()) <= ix.entries[i].scrapedAt().Sub(t)) {
		// The older neighbour wins ties; among versions with the same
		// ScrapedAt the first to arrive is the older one.
		i--
		for i > 0 && ix.entries[i-1].scrapedAt().Equal(ix.entries[i].scrapedAt()) {
			i--
		}
	}
	return i
}

// version renders position i for callers, with a copy of the snapshot so
// that they cannot change the index.
func (ix *accountIndex) version(i int) Version {
	e := ix.entries[i]
	return Version{
		ID:       e.id,
		Number:   i + 1,
		Total:    len(ix.entries),
		StoredAt: e.storedAt,
		Snapshot: cloneSnapshot(e.snap),
	}
}

func cloneSnapshot(s shared.Snapshot) shared.Snapshot {
	c := s
	if s.Meters != nil {
		c.Meters = make([]shared.Meter, len(s.Meters))
		copy(c.Meters, s.Meters)
		for i := range c.Meters {
			if r := c.Meters[i].ResetsAt; r != nil {
				t := *r
				c.Meters[i].ResetsAt = &t
			}
		}
	}
	if s.ExtraUsage != nil {
		e := *s.ExtraUsage
		c.ExtraUsage = &e
	}
	if s.ExtractionErrors != nil {
		c.ExtractionErrors = make(map[string]string, len(s.ExtractionErrors))
		for k, v := range s.ExtractionErrors {
			c.ExtractionErrors[k] = v
		}
	}
	return c
}

// interner shares the strings that repeat in every snapshot (account, meter
// ids and labels, source). It is bounded so that a writer sending ever new
// labels cannot grow it without limit.
type interner map[string]string

func (in interner) get(s string) string {
	if v, ok := in[s]; ok {
		return v
	}
	if len(in) < internMaxSize && len(s) <= 128 {
		in[s] = s
	}
	return s
}

func (in interner) snapshot(s *shared.Snapshot) {
	s.Account = in.get(s.Account)
	s.Source = in.get(s.Source)
	s.Capture = in.get(s.Capture)
	for i := range s.Meters {
		m := &s.Meters[i]
		m.ID = in.get(m.ID)
		m.Label = in.get(m.Label)
		if m.ResetsText != "" {
			m.ResetsText = in.get(m.ResetsText)
		}
	}
	if s.ExtraUsage != nil {
		s.ExtraUsage.Currency = in.get(s.ExtraUsage.Currency)
	}
	if len(s.ExtractionErrors) == 0 {
		s.ExtractionErrors = nil
	}
}
