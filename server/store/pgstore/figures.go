package pgstore

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// RefreshEvery is how often each instance reloads its figures (counts,
// latest times, scraper reports, corrupt rows) from the database, which
// catches what another replica's retention removed and any notice the
// listener missed.
const RefreshEvery = 5 * time.Second

const figuresSQL = `
SELECT c.account, c.n, l.scraped_s, l.scraped_ns, l.id, c.last_seq
FROM (SELECT account, versions AS n, last_seq FROM usage_accounts WHERE versions > 0 AND ($1::text IS NULL OR account = $1)) c
CROSS JOIN LATERAL (SELECT v.scraped_s, v.scraped_ns, v.id FROM usage_versions v WHERE v.account = c.account
                    ORDER BY ` + orderDesc + ` LIMIT 1) l`

// loadFigures reads the figures of one account, or of all when account is
// "", and notes the accounts whose rollup lacks versions (a notice missed,
// a writer that sends none): the rollup loop catches them up.
func (s *Store) loadFigures(ctx context.Context, account string) (map[string]accountFigures, error) {
	rows, err := s.pool.Query(ctx, figuresSQL, accountArg(account))
	if err != nil {
		return nil, err
	}
	out, lasts, err := scanFigures(rows)
	if err != nil {
		return nil, err
	}
	s.noteLastSeqs(lasts)
	return out, nil
}

// accountArg is figuresSQL's argument: NULL for every account.
func accountArg(account string) any {
	if account == "" {
		return nil
	}
	return account
}

// scanFigures reads figuresSQL's rows, and each account's newest seq.
func scanFigures(rows pgx.Rows) (map[string]accountFigures, map[string]int64, error) {
	defer rows.Close()
	out := map[string]accountFigures{}
	var a, id string
	var n int
	var ls, last int64
	var lns int32
	lasts := map[string]int64{}
	for rows.Next() {
		if err := rows.Scan(&a, &n, &ls, &lns, &id, &last); err != nil {
			return nil, nil, err
		}
		out[a] = accountFigures{count: n, latest: time.Unix(ls, int64(lns)).UTC(), latestID: id}
		lasts[a] = last
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return out, lasts, nil
}

// noteLastSeqs marks behind each account whose newest seq is above its
// rollup's through seq. A version announced by a notice is usually
// applied right after this (applyRemote); the rollup loop then finds it
// caught up and asks nothing.
func (s *Store) noteLastSeqs(lasts map[string]int64) {
	var behind []string
	s.mu.RLock()
	for a, last := range lasts {
		if r := s.rollups[a]; r == nil || int64(r.ThroughSeq()) < last {
			behind = append(behind, a)
		}
	}
	s.mu.RUnlock()
	for _, a := range behind {
		s.markBehind(a, lasts[a])
	}
}

// apply replaces figures read since gen was current, except those this
// instance changed after the read began (they are newer than the read).
// all says fig covers every account, so one missing from it has none.
func (s *Store) apply(fig map[string]accountFigures, gen uint64, account string) (changed []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, f := range s.accounts {
		if account != "" && a != account {
			continue
		}
		if _, ok := fig[a]; !ok && f.gen <= gen {
			delete(s.accounts, a)
			s.dropLatest(a)
			changed = append(changed, a)
		}
	}
	for a, f := range fig {
		old, ok := s.accounts[a]
		if ok && old.gen > gen {
			continue
		}
		switch {
		case !ok || old.latestID != f.latestID:
			s.dropLatest(a)
			changed = append(changed, a)
		case old.count != f.count:
			// Another replica stored a version older than the latest (or
			// retention removed some): the latest stays, with the count.
			s.recountLatest(a, f.count)
			changed = append(changed, a)
		}
		f.gen = old.gen
		s.accounts[a] = f
	}
	return changed
}

func (s *Store) currentGen() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.gen
}

// refreshAccount reloads one account's figures.
func (s *Store) refreshAccount(ctx context.Context, account string) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	gen := s.currentGen()
	fig, err := s.loadFigures(ctx, account)
	if err != nil {
		return err
	}
	s.apply(fig, gen, account)
	return nil
}

// refreshAll reloads every figure; it returns the accounts whose latest
// version changed.
func (s *Store) refreshAll(ctx context.Context) error {
	_, err := s.refreshAllChanged(ctx)
	return err
}

func (s *Store) refreshAllChanged(ctx context.Context) ([]string, error) {
	var corrupt int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM usage_corrupt_versions").Scan(&corrupt); err != nil {
		return nil, err
	}
	if err := s.loadScrapers(ctx, ""); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.corrupt = corrupt
	s.mu.Unlock()
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	gen := s.currentGen()
	fig, err := s.loadFigures(ctx, "")
	if err != nil {
		return nil, err
	}
	return s.apply(fig, gen, ""), nil
}

// loadScrapers reads the scraper reports (of one account, or all). A
// report that does not decode is logged and left out, as the file store
// does with an unreadable report file.
func (s *Store) loadScrapers(ctx context.Context, account string) error {
	rows, err := s.pool.Query(ctx, "SELECT account, status FROM usage_scraper_status WHERE $1::text IS NULL OR account = $1", accountArg(account))
	if err != nil {
		return err
	}
	var a string
	var raw []byte
	got := map[string]shared.ScraperStatus{}
	for rows.Next() {
		if err := rows.Scan(&a, &raw); err != nil {
			rows.Close()
			return err
		}
		var st shared.ScraperStatus
		err := json.Unmarshal(raw, &st)
		if err == nil && st.Account != a {
			err = errMismatch
		}
		if err == nil {
			st, err = store.CheckScraperStatus(st)
		}
		if err != nil {
			s.log.Warn("ignoring an unreadable scraper status", "account", a, "error", err.Error())
			continue
		}
		got[a] = st
	}
	if err := rows.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, st := range got {
		if old, ok := s.scrapers[a]; !ok || !st.At.Before(old.At) {
			s.scrapers[a] = st
		}
	}
	return nil
}

func (s *Store) refreshLoop() {
	t := time.NewTicker(s.opts.refreshEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, RefreshEvery)
		if err := s.refreshAll(ctx); err != nil && s.ctx.Err() == nil {
			s.log.Debug("could not refresh the figures", "error", err.Error())
		}
		cancel()
	}
}
