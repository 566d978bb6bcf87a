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

// An account's rollup is a fold of its versions in seq order: its through
// seq W means that every version of the account up to W is applied and
// none after it. Migration 0006 makes that cheap to keep: a version's seq
// is drawn under its account's row lock, so an account's versions commit
// in seq order (whichever replica stores them), and each records its
// predecessor (prev_seq). A version is applied when its predecessor is W;
// one whose predecessor this instance has not applied is held in memory
// until the predecessor comes: with two replicas behind a balancer that
// is the usual case for a save whose predecessor the other replica
// stored a moment before (its notice still on its way), and a query per
// such save cost every third POST two round trips. If the predecessor
// does not come within rollupPersistDelay (a notice missed while the
// listener reconnected, a row written by something that sends no notice)
// the rollup loop catches the account up from the database: the stored
// rollup when it is further along, then the versions above W in seq
// order. So a
// rollup written to usage_rollups is always complete through its
// through_seq, and the catch-up after a restart (the versions above it)
// misses nothing. The bound is structural, not a time window: no save can
// commit a seq below one already committed for its account. The cost per
// save is the trigger's two statements on a row the save locks anyway;
// the catch-up query runs only when versions arrive out of order.

// loadRollups reads every account's rollup and applies the versions stored
// after it was written; one missing or damaged is rebuilt from the
// versions.
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
			if dec, err := s.decodeRollup(st.raw, account, deref(st.through)); err == nil {
				r = dec
			}
		}
		vs, err := s.versionsAfter(ctx, account, int64(r.ThroughSeq()))
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.rollups[account] = r
		s.applyInOrder(account, r, vs)
		if st.raw == nil || r.ThroughSeq() != uint64(deref(st.through)) {
			s.rollDirty[account] = true
		}
		s.mu.Unlock()
	}
	return nil
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// decodeRollup reads a stored rollup as covering through; a damaged one
// is logged (and rebuilt by the caller).
func (s *Store) decodeRollup(raw []byte, account string, through int64) (*store.Rollup, error) {
	r, err := store.DecodeRollup(raw, account)
	if err != nil {
		s.log.Warn("rebuilding a damaged rollup from the versions", "account", account, "error", err.Error())
		return nil, err
	}
	r.SetThroughSeq(uint64(through))
	return r, nil
}

// rollVersion is a version as the rollup needs it; ok is false for a row
// that does not decode (quarantined at Open, or written since).
type rollVersion struct {
	seq  int64
	snap shared.Snapshot
	ok   bool
}

// versionsAfter reads the account's versions above seq w, in seq order.
// They are every version of the account above w that exists: one with a
// lower seq than any of them committed before it.
func (s *Store) versionsAfter(ctx context.Context, account string, w int64) ([]rollVersion, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+cols+" FROM usage_versions v WHERE v.account = $1 AND v.seq > $2 ORDER BY v.seq",
		account, w)
	if err != nil {
		return nil, err
	}
	var out []rollVersion
	var r row
	_, err = pgx.ForEachRow(rows, r.dest(), func() error {
		snap, err := r.decode()
		out = append(out, rollVersion{seq: r.seq, snap: snap, ok: err == nil})
		return nil
	})
	return out, err
}

// applyInOrder applies vs (in seq order, all of the account's versions
// above some seq <= r's) that r does not have yet. The caller holds s.mu.
func (s *Store) applyInOrder(account string, r *store.Rollup, vs []rollVersion) {
	var skipped []string
	now := time.Now()
	for _, v := range vs {
		switch {
		case uint64(v.seq) <= r.ThroughSeq():
		case v.ok:
			skipped = append(skipped, r.Apply(uint64(v.seq), v.snap, s.opts.HistoryDays, now)...)
			s.rollDirty[account] = true
		default:
			r.SetThroughSeq(uint64(v.seq))
			s.rollDirty[account] = true
		}
	}
	if len(skipped) > 0 {
		s.log.Warn("rollup tracks at most 32 meters per account; these meters get no history", "account", account, "meters", skipped)
	}
}

// applyRollup adds a version this instance stored or heard of to its
// account's rollup: at once when its predecessor prev is the rollup's
// through seq; held until the predecessor comes when it is not (rollhold.go);
// by catching up when prev is nil (not known: a row written before
// migration 0006).
func (s *Store) applyRollup(ctx context.Context, account string, seq int64, prev *int64, snap shared.Snapshot) {
	s.mu.Lock()
	r := s.rollups[account]
	if r == nil {
		r = store.NewRollup()
		s.rollups[account] = r
	}
	w := int64(r.ThroughSeq())
	if seq <= w {
		s.mu.Unlock()
		return // applied already, by a catch-up
	}
	if prev == nil {
		s.mu.Unlock()
		if err := s.catchUp(ctx, account, seq); err != nil {
			s.markBehind(account, seq)
			s.log.Warn("could not catch the rollup up; the rollup loop tries again", "account", account, "error", err.Error())
		}
		s.kickRollup()
		return
	}
	if *prev != w {
		s.hold(account, rollHeld{seq: seq, prev: *prev, snap: snap})
		s.mu.Unlock()
		s.markBehind(account, seq)
		return
	}
	s.applyInOrder(account, r, []rollVersion{{seq: seq, snap: snap, ok: true}})
	s.applyHeld(account, r)
	s.mu.Unlock()
	s.kickRollup()
}

func (s *Store) kickRollup() {
	select {
	case s.rollKick <- struct{}{}:
	default:
	}
}

// catchUp brings the account's rollup up to the versions in the database:
// from the stored rollup when another instance wrote one further along,
// then the versions above it. last is a seq of the account known to be
// committed (read before this runs): every version up to it is visible to
// the query here, so one not found is gone (an insert skipped by ON
// CONFLICT, or removed) and the rollup is complete through last.
func (s *Store) catchUp(ctx context.Context, account string, last int64) error {
	var through int64
	var raw []byte
	err := s.pool.QueryRow(ctx, "SELECT through_seq, rollup FROM usage_rollups WHERE account = $1", account).Scan(&through, &raw)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	s.mu.RLock()
	w := int64(0)
	if r := s.rollups[account]; r != nil {
		w = int64(r.ThroughSeq())
	}
	s.mu.RUnlock()
	var base *store.Rollup
	if raw != nil && through > w {
		if base, err = s.decodeRollup(raw, account, through); err == nil {
			w = through
		}
	}
	vs, err := s.versionsAfter(ctx, account, w)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rollups[account]
	if r == nil || base != nil && base.ThroughSeq() > r.ThroughSeq() {
		if base == nil {
			base = store.NewRollup()
		}
		r = base
		s.rollups[account] = r
	}
	s.applyInOrder(account, r, vs)
	if uint64(last) > r.ThroughSeq() {
		r.SetThroughSeq(uint64(last))
		s.rollDirty[account] = true
	}
	s.applyHeld(account, r)
	return nil
}

// markBehind notes that the account has versions up to last that its
// rollup may lack; the rollup loop catches it up.
func (s *Store) markBehind(account string, last int64) {
	s.mu.Lock()
	if s.rollBehind == nil {
		s.rollBehind = make(map[string]int64)
	}
	s.rollBehind[account] = max(s.rollBehind[account], last)
	s.mu.Unlock()
	s.kickRollup()
}

// catchUpBehind catches up the accounts markBehind noted, unless their
// rollup got there meanwhile.
func (s *Store) catchUpBehind(ctx context.Context) {
	s.mu.Lock()
	todo := map[string]int64{}
	for a, last := range s.rollBehind {
		if r := s.rollups[a]; r != nil && int64(r.ThroughSeq()) >= last {
			delete(s.rollBehind, a)
			continue
		}
		todo[a] = last
	}
	s.mu.Unlock()
	for a, last := range todo {
		if err := s.catchUp(ctx, a, last); err != nil {
			s.log.Warn("could not catch the rollup up; it is tried again after the next save", "account", a, "error", err.Error())
			continue
		}
		s.mu.Lock()
		if s.rollBehind[a] == last {
			delete(s.rollBehind, a)
		}
		s.mu.Unlock()
	}
}

func (s *Store) rollupLoop() {
	for {
		select {
		case <-s.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s.persistRollups(ctx)
			cancel()
			return
		case <-s.rollKick:
		}
		t := time.NewTimer(s.opts.rollupDelay)
		select {
		case <-s.ctx.Done():
			t.Stop()
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.catchUpBehind(ctx)
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

// seriesSQL is Series' one query: the oldest kept version's time (no row
// when the account has none) with, beside it, each reading of the meter
// in range (NULLs when there is none).
const seriesSQL = `SELECT o.scraped_s, o.scraped_ns, r.scraped_s, r.scraped_ns, r.pct
FROM (SELECT w.scraped_s, w.scraped_ns FROM usage_versions w WHERE w.account = $1 ORDER BY w.scraped_s, w.scraped_ns LIMIT 1) o
LEFT JOIN LATERAL (SELECT v.scraped_s, v.scraped_ns, v.seq, (m->>'percentUsed')::float8 AS pct
	FROM usage_versions v CROSS JOIN LATERAL jsonb_array_elements(v.snapshot->'meters') m
	WHERE v.account = $1 AND m->>'id' = $2 AND (v.scraped_s, v.scraped_ns) >= ($3, $4) AND (v.scraped_s, v.scraped_ns) < ($5, $6)) r ON true
ORDER BY r.scraped_s, r.scraped_ns, r.seq`

// Series implements store.Store with one database query (the kept
// versions' readings and the oldest one's time); before the oldest kept
// version, the rollup's hourly maxima come from memory.
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
		ss, sns := split(since)
		us, uns := split(until)
		rows, err := s.pool.Query(ctx, seriesSQL, account, meter, ss, sns, us, uns)
		if err != nil {
			return err
		}
		var raw []shared.SeriesPoint
		var oldS, ps *int64
		var ons, pns *int32
		var pct *float64
		if _, err := pgx.ForEachRow(rows, []any{&oldS, &ons, &ps, &pns, &pct}, func() error {
			if ps != nil && pct != nil {
				raw = append(raw, shared.SeriesPoint{At: time.Unix(*ps, int64(*pns)).UTC(), PercentUsed: *pct})
			}
			return nil
		}); err != nil {
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
