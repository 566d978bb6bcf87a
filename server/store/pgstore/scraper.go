package pgstore

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

var errMismatch = errors.New("the report's account does not match its row")

// SaveScraperStatus implements store.Store: the upsert keeps the report
// only when it is not older than the one stored, whichever replica stored
// that, and only then is it kept in memory.
func (s *Store) SaveScraperStatus(ctx context.Context, st shared.ScraperStatus) (bool, error) {
	st, err := store.CheckScraperStatus(st)
	if err != nil {
		return false, err
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return false, shared.Errorf(shared.CodeValidationFailed, "the scraper status cannot be stored: %s", err.Error())
	}
	if err := s.life.Enter(); err != nil {
		return false, err
	}
	defer s.life.Leave()
	payload, _ := json.Marshal(notice{Account: st.Account, Origin: s.instance})
	as, ans := split(st.At)
	kept := false
	err = s.do(ctx, "saving the scraper status", true, func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, `
			INSERT INTO usage_scraper_status AS o (account, at_s, at_ns, status) VALUES ($1, $2, $3, $4)
			ON CONFLICT (account) DO UPDATE SET at_s = EXCLUDED.at_s, at_ns = EXCLUDED.at_ns,
				status = EXCLUDED.status, updated_at = now()
			WHERE (o.at_s, o.at_ns) <= (EXCLUDED.at_s, EXCLUDED.at_ns)
			RETURNING pg_notify('`+ChannelScraper+`', $5)`, st.Account, as, ans, raw, string(payload)).Scan(nil)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // a late report never hides a newer one
		}
		kept = err == nil
		return err
	})
	if err != nil || !kept {
		return false, err
	}
	s.mu.Lock()
	if old, ok := s.scrapers[st.Account]; !ok || !st.At.Before(old.At) {
		s.scrapers[st.Account] = st
	}
	s.mu.Unlock()
	return true, nil
}

// ScraperStatus implements store.Store from memory.
func (s *Store) ScraperStatus(account string) (shared.ScraperStatus, bool) {
	if account == "" {
		account = shared.DefaultAccount
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.scrapers[account]
	return st, ok
}
