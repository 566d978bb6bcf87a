package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// cols are a version row's columns as scanRow reads them.
const cols = "v.seq, v.id, v.account, v.scraped_s, v.scraped_ns, v.stored_at, v.snapshot"

// totalOf is an account's number of versions (migration 0003's counter,
// kept by a trigger in the transaction of every insert and delete, so one
// statement sees it consistent with the rows); numberOf is row v's
// number: the total less the versions after it, which for the newest
// versions, the ones asked for, is a short index range.
func totalOf(account string) string {
	return "coalesce((SELECT a.versions FROM usage_accounts a WHERE a.account = " + account + "), 0)"
}

const numberOfV = `(SELECT count(*) FROM usage_versions w WHERE w.account = v.account
	AND (w.scraped_s, w.scraped_ns, w.seq) > (v.scraped_s, v.scraped_ns, v.seq))`

// order is the version order: scrapedAt, then arrival.
const (
	orderAsc  = "v.scraped_s, v.scraped_ns, v.seq"
	orderDesc = "v.scraped_s DESC, v.scraped_ns DESC, v.seq DESC"
)

type row struct {
	seq      int64
	id       string
	account  string
	s        int64
	ns       int32
	storedAt time.Time
	raw      []byte
}

func (r *row) dest(extra ...any) []any {
	return append([]any{&r.seq, &r.id, &r.account, &r.s, &r.ns, &r.storedAt, &r.raw}, extra...)
}

func (r row) scrapedAt() time.Time { return time.Unix(r.s, int64(r.ns)).UTC() }

// corruptError is a row whose snapshot does not decode or validate.
type corruptError struct {
	seq    int64
	reason string
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("version row %d is corrupt: %s", e.seq, e.reason)
}

// decode checks a row the way the file store checks a version file at
// Open: it must decode, name its row's account and time, and validate.
func (r row) decode() (shared.Snapshot, error) {
	var snap shared.Snapshot
	bad := func(format string, args ...any) (shared.Snapshot, error) {
		return shared.Snapshot{}, &corruptError{seq: r.seq, reason: fmt.Sprintf(format, args...)}
	}
	if err := json.Unmarshal(r.raw, &snap); err != nil {
		return bad("invalid JSON: %v", err)
	}
	if snap.Account != r.account {
		return bad("account %q does not match the row's %q", snap.Account, r.account)
	}
	if !snap.ScrapedAt.Equal(r.scrapedAt()) {
		return bad("scrapedAt %s does not match the row's", snap.ScrapedAt.Format(time.RFC3339Nano))
	}
	if err := snap.Validate(snap.ScrapedAt); err != nil {
		return bad("snapshot invalid: %v", err)
	}
	snap.ScrapedAt = snap.ScrapedAt.UTC()
	return snap, nil
}

func (r row) version(number, total int) (store.Version, error) {
	snap, err := r.decode()
	if err != nil {
		return store.Version{}, err
	}
	return store.Version{ID: r.id, Number: number, Total: total, StoredAt: r.storedAt.UTC(), Snapshot: snap}, nil
}

// read runs a query through do; a corrupt row it meets is quarantined and
// the query runs again (a few times: each pass removes one row).
func (s *Store) read(ctx context.Context, verb string, op func(context.Context) error) error {
	return s.readOrWrite(ctx, verb, false, op)
}

// readOrWrite is read for an operation that also writes (a save, whose
// replay reads a row that may be corrupt).
func (s *Store) readOrWrite(ctx context.Context, verb string, write bool, op func(context.Context) error) error {
	for range 3 {
		err := s.do(ctx, verb, write, op)
		var ce *corruptError
		if !errors.As(err, &ce) {
			return err
		}
		s.quarantine(ctx, ce.seq, ce.reason)
	}
	return shared.Errorf(shared.CodeStorageReadFailed, "storage: %s in %s: too many corrupt rows; see the log", verb, s.where)
}

// Latest implements store.Store, from memory when this instance knows the
// account's latest version (latest.go).
func (s *Store) Latest(ctx context.Context, account string) (store.Version, error) {
	account, err := store.NormAccount(account)
	if err != nil {
		return store.Version{}, err
	}
	return s.readLatest(ctx, account)
}

func (s *Store) queryLatest(ctx context.Context, account string) (store.Version, error) {
	var v store.Version
	var err error
	err = s.read(ctx, "reading the latest version", func(ctx context.Context) error {
		var r row
		var total int
		err := s.pool.QueryRow(ctx, "SELECT "+cols+", "+totalOf("$1")+" "+
			"FROM usage_versions v WHERE v.account = $1 ORDER BY "+orderDesc+" LIMIT 1", account).Scan(r.dest(&total)...)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.NoData(account)
		}
		if err != nil {
			return err
		}
		v, err = r.version(total, total)
		return err
	})
	return v, err
}

// ByNumber implements store.Store.
func (s *Store) ByNumber(ctx context.Context, account string, n int) (store.Version, error) {
	account, err := store.NormAccount(account)
	if err != nil {
		return store.Version{}, err
	}
	var v store.Version
	err = s.read(ctx, "reading a version", func(ctx context.Context) error {
		var total int
		if n != 0 {
			order, offset := orderAsc, n-1
			if n < 0 {
				order, offset = orderDesc, -n-1
			}
			var r row
			err := s.pool.QueryRow(ctx, "SELECT "+cols+", "+totalOf("$1")+" "+
				"FROM usage_versions v WHERE v.account = $1 ORDER BY "+order+" OFFSET $2 LIMIT 1", account, offset).Scan(r.dest(&total)...)
			if err == nil {
				num := n
				if n < 0 {
					num = total + n + 1
				}
				v, err = r.version(num, total)
				return err
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		// Out of range (or no versions): the total names the range.
		if err := s.pool.QueryRow(ctx, "SELECT "+totalOf("$1"), account).Scan(&total); err != nil {
			return err
		}
		if total == 0 {
			return store.NoData(account)
		}
		return store.VersionNotFound(n, total)
	})
	return v, err
}

// Nearest implements store.Store: the newest version scraped before t (the
// first to arrive among ties) and the first scraped at or after t are the
// candidates; the older wins a tie in distance.
func (s *Store) Nearest(ctx context.Context, account string, t time.Time) (store.Version, error) {
	account, err := store.NormAccount(account)
	if err != nil {
		return store.Version{}, err
	}
	ts, tns := split(t)
	var v store.Version
	err = s.read(ctx, "reading the nearest version", func(ctx context.Context) error {
		for range 3 { // a candidate removed by retention meanwhile: ask again
			var before, after *candidate
			rows, err := s.pool.Query(ctx, `
				(SELECT v.seq, v.scraped_s, v.scraped_ns, true FROM usage_versions v
				 WHERE v.account = $1 AND (v.scraped_s, v.scraped_ns) < ($2, $3)
				 ORDER BY v.scraped_s DESC, v.scraped_ns DESC, v.seq LIMIT 1)
				UNION ALL
				(SELECT v.seq, v.scraped_s, v.scraped_ns, false FROM usage_versions v
				 WHERE v.account = $1 AND (v.scraped_s, v.scraped_ns) >= ($2, $3)
				 ORDER BY `+orderAsc+` LIMIT 1)`, account, ts, tns)
			if err != nil {
				return err
			}
			var c candidate
			_, err = pgx.ForEachRow(rows, []any{&c.seq, &c.s, &c.ns, &c.before}, func() error {
				cc := c
				if cc.before {
					before = &cc
				} else {
					after = &cc
				}
				return nil
			})
			if err != nil {
				return err
			}
			pick := after
			if after == nil || (before != nil && t.Sub(before.at()) <= after.at().Sub(t)) {
				pick = before
			}
			if pick == nil {
				return store.NoData(account)
			}
			found, err := s.bySeq(ctx, pick.seq, &v)
			if err != nil || found {
				return err
			}
		}
		return store.NoData(account)
	})
	return v, err
}

type candidate struct {
	seq    int64
	s      int64
	ns     int32
	before bool
}

func (c candidate) at() time.Time { return time.Unix(c.s, int64(c.ns)) }

// bySeq reads one version with its number; found is false when the row is
// gone.
func (s *Store) bySeq(ctx context.Context, seq int64, v *store.Version) (found bool, err error) {
	var r row
	var num, total int
	err = s.pool.QueryRow(ctx, "SELECT "+cols+", "+totalOf("v.account")+" - "+numberOfV+", "+totalOf("v.account")+
		" FROM usage_versions v WHERE v.seq = $1", seq).Scan(r.dest(&num, &total)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	*v, err = r.version(num, total)
	return err == nil, err
}

// History implements store.Store. limit <= 0 means no limit. The rows
// selected are the newest of the account, so their numbers end at the
// total.
func (s *Store) History(ctx context.Context, account string, since time.Time, limit int) ([]store.Version, error) {
	account, err := store.NormAccount(account)
	if err != nil {
		return nil, err
	}
	var lim any // NULL: LIMIT ALL
	if limit > 0 {
		lim = limit
	}
	ss, sns := split(since)
	if since.IsZero() {
		ss, sns = -1<<62, 0
	}
	var out []store.Version
	err = s.read(ctx, "reading the history", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, "SELECT "+cols+", "+totalOf("$1")+" "+
			"FROM usage_versions v WHERE v.account = $1 AND (v.scraped_s, v.scraped_ns) >= ($2, $3) ORDER BY "+orderDesc+" LIMIT $4",
			account, ss, sns, lim)
		if err != nil {
			return err
		}
		var r row
		var total int
		var got []row
		if _, err := pgx.ForEachRow(rows, r.dest(&total), func() error { got = append(got, r); return nil }); err != nil {
			return err
		}
		if len(got) == 0 {
			if err := s.pool.QueryRow(ctx, "SELECT "+totalOf("$1"), account).Scan(&total); err != nil {
				return err
			}
			if total == 0 {
				return store.NoData(account)
			}
		}
		out = make([]store.Version, 0, len(got))
		for i := len(got) - 1; i >= 0; i-- {
			v, err := got[i].version(total-i, total)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// Accounts implements store.Store from this instance's figures.
func (s *Store) Accounts() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.accounts))
	for a, f := range s.accounts {
		if f.count > 0 {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

// Count implements store.Store from this instance's figures.
func (s *Store) Count(account string) int {
	if account == "" {
		account = shared.DefaultAccount
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.accounts[account].count
}

// Status implements store.Store from memory: the last write check, the
// breaker and the figures.
func (s *Store) Status() store.Status {
	st := s.check.Status(func(st *store.Status) {
		db := s.db
		st.Database = &db
	})
	s.mu.RLock()
	defer s.mu.RUnlock()
	st.CorruptFiles = s.corrupt
	for a, f := range s.accounts {
		if f.count > 0 {
			st.Accounts = append(st.Accounts, store.AccountStatus{Account: a, Count: f.count, Latest: f.latest})
		}
	}
	slices.SortFunc(st.Accounts, func(a, b store.AccountStatus) int { return strings.Compare(a.Account, b.Account) })
	for _, sc := range s.scrapers {
		st.Scrapers = append(st.Scrapers, sc)
	}
	slices.SortFunc(st.Scrapers, func(a, b shared.ScraperStatus) int { return strings.Compare(a.Account, b.Account) })
	return st
}

// split is t as the (seconds, nanoseconds) pair the rows keep.
func split(t time.Time) (int64, int32) {
	return t.Unix(), int32(t.Nanosecond())
}
