package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// rollupPersistDelay lets a burst of saves end in one write per account.
const rollupPersistDelay = time.Second

// loadRollups reads every account's rollup and applies the versions stored
// after it was written; one missing or damaged is rebuilt from the
// versions. A version committed after one with a higher seq was written
// may be missed by this catch-up; it is still answered from the versions
// while retention keeps it.
func (s *Store) loadRollups(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT a.account, r.through_seq, r.rollup FROM
		(SELECT account FROM usage_accounts UNION SELECT account FROM usage_rollups) a
		LEFT JOIN usage_rollups r ON r.account = a.account`)
	if err != nil {
		return err
	}
	type stored struct {
		through *int64
		raw     []byte
	}
	got := map[string]stored{}
	var a string
	var st stored
	if _, err := pgx.ForEachRow(rows, []any{&a, &st.through, &st.raw}, func() error { got[a] = st; return nil }); err != nil {
		return err
	}
	for account, st := range got {
		r := store.NewRollup()
		if st.raw != nil {
			dec, err := store.DecodeRollup(st.raw, account)
			if err != nil {
				s.log.Warn("rebuilding a damaged rollup from the versions", "account", account, "error", err.Error())
			} else {
				r = dec
			}
		}
		if err := s.catchUp(ctx, account, r); err != nil {
			return err
		}
		s.rollups[account] = r
		if st.raw == nil || r.ThroughSeq() != uint64(deref(st.through)) {
			s.rollDirty[account] = true
		}
	}
	return nil
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// catchUp applies the account's versions after r's through seq.
func (s *Store) catchUp(ctx context.Context, account string, r *store.Rollup) error {
	rows, err := s.pool.Query(ctx, "SELECT "+cols+" FROM usage_versions v WHERE v.account = $1 AND v.seq > $2 ORDER BY v.seq",
		account, int64(r.ThroughSeq()))
	if err != nil {
		return err
	}
	var row row
	now := time.Now()
	_, err = pgx.ForEachRow(rows, row.dest(), func() error {
		snap, err := row.decode()
		if err != nil {
			return nil // quarantined at Open already; one written since is skipped here
		}
		r.Apply(uint64(row.seq), snap, s.opts.HistoryDays, now)
		return nil
	})
	return err
}

// applyRollup adds a stored version to its account's rollup in memory.
func (s *Store) applyRollup(account string, seq int64, snap shared.Snapshot) {
	s.mu.Lock()
	r := s.rollups[account]
	if r == nil {
		r = store.NewRollup()
		s.rollups[account] = r
	}
	skipped := r.Apply(uint64(seq), snap, s.opts.HistoryDays, time.Now())
	s.rollDirty[account] = true
	s.mu.Unlock()
	if len(skipped) > 0 {
		s.log.Warn("rollup tracks at most 32 meters per account; these meters get no history", "account", account, "meters", skipped)
	}
	select {
	case s.rollKick <- struct{}{}:
	default:
	}
}

// applyRemote adds another replica's version, read by id.
func (s *Store) applyRemote(ctx context.Context, id string) error {
	var r row
	err := s.pool.QueryRow(ctx, "SELECT "+cols+" FROM usage_versions v WHERE v.id = $1", id).Scan(r.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // removed meanwhile
	}
	if err != nil {
		return err
	}
	snap, err := r.decode()
	if err != nil {
		return nil
	}
	s.applyRollup(r.account, r.seq, snap)
	return nil
}

func (s *Store) rollupLoop() {
	defer s.bg.Done()
	for {
		select {
		case <-s.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s.persistRollups(ctx)
			cancel()
			return
		case <-s.rollKick:
		}
		t := time.NewTimer(rollupPersistDelay)
		select {
		case <-s.ctx.Done():
			t.Stop()
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.persistRollups(ctx)
		cancel()
	}
}

// persistRollups writes the rollups changed in memory. One that cannot be
// written stays marked and goes with the next save's write.
func (s *Store) persistRollups(ctx context.Context) {
	s.mu.Lock()
	type job struct {
		account string
		through uint64
		raw     []byte
	}
	var jobs []job
	for a := range s.rollDirty {
		raw, err := s.rollups[a].Encode(a)
		if err != nil {
			continue
		}
		jobs = append(jobs, job{a, s.rollups[a].ThroughSeq(), raw})
		delete(s.rollDirty, a)
	}
	s.mu.Unlock()
	for _, j := range jobs {
		_, err := s.pool.Exec(ctx, `INSERT INTO usage_rollups AS o (account, through_seq, rollup) VALUES ($1, $2, $3)
			ON CONFLICT (account) DO UPDATE SET through_seq = EXCLUDED.through_seq, rollup = EXCLUDED.rollup, updated_at = now()
			WHERE o.through_seq <= EXCLUDED.through_seq`, j.account, int64(j.through), j.raw)
		if err != nil {
			s.log.Warn("could not write a rollup; it is written after the next save", "account", j.account, "error", err.Error())
			s.mu.Lock()
			s.rollDirty[j.account] = true
			s.mu.Unlock()
		}
	}
}

// Series implements store.Store: the kept versions' readings from the
// database, before the oldest of them the rollup's hourly maxima.
func (s *Store) Series(ctx context.Context, account, meter string, since, until time.Time) ([]shared.SeriesPoint, error) {
	account, err := store.NormAccount(account)
	if err != nil {
		return nil, err
	}
	if err := store.CheckMeter(meter); err != nil {
		return nil, err
	}
	s.mu.RLock()
	r := s.rollups[account]
	s.mu.RUnlock()
	var out []shared.SeriesPoint
	err = s.read(ctx, "reading a series", func(ctx context.Context) error {
		var oldS *int64
		var ons *int32
		if err := s.pool.QueryRow(ctx, "SELECT min(v.scraped_s), (SELECT w.scraped_ns FROM usage_versions w WHERE w.account = $1 ORDER BY "+
			"w.scraped_s, w.scraped_ns LIMIT 1) FROM usage_versions v WHERE v.account = $1", account).Scan(&oldS, &ons); err != nil {
			return err
		}
		if oldS == nil && r == nil {
			return store.NoData(account)
		}
		if !since.Before(until) {
			out = []shared.SeriesPoint{}
			return nil
		}
		rawFrom := until
		if oldS != nil {
			rawFrom = time.Unix(*oldS, int64(*ons)).UTC()
		}
		ss, sns := split(since)
		us, uns := split(until)
		rows, err := s.pool.Query(ctx, `SELECT v.scraped_s, v.scraped_ns, (m->>'percentUsed')::float8
			FROM usage_versions v CROSS JOIN LATERAL jsonb_array_elements(v.snapshot->'meters') m
			WHERE v.account = $1 AND m->>'id' = $2 AND (v.scraped_s, v.scraped_ns) >= ($3, $4) AND (v.scraped_s, v.scraped_ns) < ($5, $6)
			ORDER BY `+orderAsc, account, meter, ss, sns, us, uns)
		if err != nil {
			return err
		}
		var raw []shared.SeriesPoint
		var ps int64
		var pns int32
		var pct float64
		if _, err := pgx.ForEachRow(rows, []any{&ps, &pns, &pct}, func() error {
			raw = append(raw, shared.SeriesPoint{At: time.Unix(ps, int64(pns)).UTC(), PercentUsed: pct})
			return nil
		}); err != nil {
			return err
		}
		s.mu.RLock()
		out = r.Series(meter, since, until, rawFrom, raw)
		s.mu.RUnlock()
		return nil
	})
	return out, err
}

// Windows implements store.Store from the rollup in memory.
func (s *Store) Windows(_ context.Context, account, meter string, limit int) ([]shared.Window, error) {
	account, err := store.NormAccount(account)
	if err != nil {
		return nil, err
	}
	if err := store.CheckMeter(meter); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.rollups[account]
	if r == nil && s.accounts[account].count == 0 {
		return nil, store.NoData(account)
	}
	return r.Windows(meter, limit, time.Now()), nil
}
