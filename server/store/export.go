package store

import (
	"time"

	"github.com/claude-usage/widget/shared"
)

// Record is one version with what a copy to another backend must keep:
// its id, when it was stored, and its idempotency key and body hash.
type Record struct {
	ID             string
	StoredAt       time.Time
	IdempotencyKey string
	BodyHash       string
	Snapshot       shared.Snapshot
}

// Records returns an account's versions in order (ScrapedAt, then
// arrival), for copying the store elsewhere (usage-server migrate).
func (s *FileStore) Records(account string) []Record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix := s.accounts[account]
	if ix == nil {
		return nil
	}
	out := make([]Record, 0, len(ix.entries))
	for _, e := range ix.entries {
		out = append(out, Record{ID: e.id, StoredAt: e.storedAt, IdempotencyKey: e.key, BodyHash: e.hash,
			Snapshot: cloneSnapshot(e.snap)})
	}
	return out
}
