package store

import (
	"context"
	"slices"
	"strings"
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

// AlertClaim is one alert id ClaimAlert recorded as sent.
type AlertClaim struct {
	ID string
	At time.Time
}

// AlertClaims lists the claimed alert ids, oldest first, for copying the
// store elsewhere (usage-server migrate): a copy without them would send
// again an alert the state document does not record (its write failed
// after the claim).
func (s *FileStore) AlertClaims(_ context.Context) ([]AlertClaim, error) {
	s.alerts.mu.Lock()
	defer s.alerts.mu.Unlock()
	var claims []claim
	if err := s.readJSON(AlertClaimsFile, &claims); err != nil {
		return nil, err
	}
	out := make([]AlertClaim, 0, len(claims))
	for _, c := range claims {
		out = append(out, AlertClaim{ID: c.ID, At: c.At.UTC()})
	}
	slices.SortStableFunc(out, func(a, b AlertClaim) int { return a.At.Compare(b.At) })
	return out, nil
}

// DeliveryChannels lists the channels that have a delivery queue file,
// sorted, for copying the store elsewhere.
func (s *FileStore) DeliveryChannels() ([]string, error) {
	ents, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return nil, s.readError("listing", s.dir, err)
	}
	var out []string
	for _, e := range ents {
		ch, ok := strings.CutPrefix(e.Name(), alertQueuePrefix)
		if ch, ok2 := strings.CutSuffix(ch, ".json"); ok && ok2 && channelPattern.MatchString(ch) && e.Type().IsRegular() {
			out = append(out, ch)
		}
	}
	return out, nil
}
