package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/xid"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// Channels on which stores announce what they stored; the payload is a
// notice as JSON.
const (
	ChannelSaved    = "usage_saved"
	ChannelScraper  = "usage_scraper_status"
	ChannelRetained = "usage_retained" // retention removed versions of the account
)

// notice is a NOTIFY payload: which account, which version, and which store
// instance stored it (so that it does not report its own saves).
type notice struct {
	Account string `json:"account"`
	ID      string `json:"id,omitempty"`
	Origin  string `json:"origin"`
}

// insertSQL stores a version unless its idempotency key exists;
// placeSQL then reads its number and the total. Both go in one batch: one
// round trip and one implicit transaction, which commits at the batch's
// end. The insert's trigger locks the account's counter row until then,
// so no other save of the account changes the figures meanwhile, and the
// lock is never held while the database waits for this process (a
// BEGIN … COMMIT of four round trips held it across three, and every
// save of the account queued behind them). placeSQL finds the row by its
// id, so a conflicting insert, which stored none, gives no row and sends
// no NOTIFY. The NOTIFY is sent at the commit.
const (
	insertSQL = `INSERT INTO usage_versions (id, account, scraped_s, scraped_ns, stored_at, idem_key, body_hash, snapshot)
	VALUES ($1, $2, $3, $4, $5, NULLIF($6::text, ''), $7, $8)
	ON CONFLICT (idem_key) DO NOTHING
	RETURNING seq, prev_seq`
	placeSQL = `SELECT t.n - (SELECT count(*) FROM usage_versions w WHERE w.account = $1
	                AND (w.scraped_s, w.scraped_ns, w.seq) > ($2, $3, v.seq)),
	       t.n, pg_notify('` + ChannelSaved + `', $5)
	FROM usage_versions v, (SELECT versions AS n FROM usage_accounts WHERE account = $1) t
	WHERE v.id = $4`
)

// errKnownKey ends a save's transaction whose key exists: it replays.
var errKnownKey = errors.New("idempotency key exists")

// Save implements store.Store. The unique idempotency key makes the check
// and the write one statement: of two replicas inserting the same key, one
// inserts and the other waits for its commit and replays it.
func (s *Store) Save(ctx context.Context, req store.SaveRequest) (store.SaveResult, error) {
	snap, err := store.CheckSave(req)
	if err != nil {
		return store.SaveResult{}, err
	}
	if err := s.life.Enter(); err != nil {
		return store.SaveResult{}, err
	}
	defer s.life.Leave()
	raw, err := json.Marshal(snap)
	if err != nil {
		return store.SaveResult{}, shared.Errorf(shared.CodeValidationFailed, "the snapshot cannot be stored: %s", err.Error())
	}
	id := xid.New().String()
	// The database keeps microseconds; what Save returns must be what a
	// read returns later.
	storedAt := time.Now().UTC().Truncate(time.Microsecond)
	payload, _ := json.Marshal(notice{Account: snap.Account, ID: id, Origin: s.instance})
	ss, sns := split(snap.ScrapedAt)

	var res store.SaveResult
	var seq, prev int64
	start := time.Now()
	err = s.readOrWrite(ctx, "saving a snapshot", true, func(ctx context.Context) error {
		for range 3 { // the keyed row removed between conflict and replay: insert again
			var num, total int
			b := &pgx.Batch{}
			b.Queue(insertSQL, id, snap.Account, ss, sns, storedAt, req.IdempotencyKey, req.BodyHash, raw)
			b.Queue(placeSQL, snap.Account, ss, sns, id, string(payload))
			br := s.pool.SendBatch(ctx, b)
			err := br.QueryRow().Scan(&seq, &prev)
			known := errors.Is(err, pgx.ErrNoRows)
			if err == nil {
				err = br.QueryRow().Scan(&num, &total, nil)
			}
			// Close reports what failed in the statements not read.
			if cerr := br.Close(); cerr != nil && (err == nil || known) {
				err, known = cerr, false
			}
			if known {
				err = errKnownKey
			}
			if err == nil {
				res = store.SaveResult{Version: store.Version{ID: id, Number: num, Total: total, StoredAt: storedAt,
					Snapshot: store.CloneSnapshot(snap)}}
				return nil
			}
			if !errors.Is(err, errKnownKey) {
				return err
			}
			ok, err := s.replay(ctx, snap.Account, req, &res)
			if err != nil || ok {
				return err
			}
		}
		return shared.Errorf(shared.CodeStorageWriteFailed, "storage: idempotency key %q kept changing hands", req.IdempotencyKey)
	})
	if err != nil {
		var se *shared.Error
		if errors.As(err, &se) && countsAgainst(err) {
			s.log.Error("save failed", "account", snap.Account, "code", string(se.Code),
				"durationMs", time.Since(start).Milliseconds(), "error", err.Error())
		}
		return store.SaveResult{}, err
	}
	if !res.Replayed {
		s.noteSaved(snap.Account, res.Version)
		s.applyRollup(ctx, snap.Account, seq, &prev, snap)
		s.signalRetention()
		s.saved(snap.Account, res.Version.ID, false)
	}
	return res, nil
}

// replay answers a save whose key exists; ok is false when the row is gone.
func (s *Store) replay(ctx context.Context, account string, req store.SaveRequest, res *store.SaveResult) (bool, error) {
	var r row
	var hash string
	var num, total int
	err := s.pool.QueryRow(ctx, "SELECT "+cols+", v.body_hash, "+totalOf("v.account")+" - "+numberOfV+", "+totalOf("v.account")+
		" FROM usage_versions v WHERE v.idem_key = $1", req.IdempotencyKey).Scan(r.dest(&hash, &num, &total)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if hash != req.BodyHash || r.account != account {
		e := shared.Errorf(shared.CodeIdempotencyKeyReused,
			"idempotency key %q was already used for a different snapshot (version %s)", req.IdempotencyKey, r.id)
		e.Field = "Idempotency-Key"
		return true, e
	}
	v, err := r.version(num, total)
	if err != nil {
		return false, err
	}
	*res = store.SaveResult{Version: v, Replayed: true}
	return true, nil
}

// noteSaved adds a version this instance stored to its figures at once, so
// that Count and Accounts include it when Save returns.
func (s *Store) noteSaved(account string, v store.Version) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	f := s.accounts[account]
	f.count = max(f.count, v.Total)
	if v.Number == v.Total || f.latest.IsZero() {
		f.latest, f.latestID = v.Snapshot.ScrapedAt, v.ID
	}
	f.gen = s.gen
	s.accounts[account] = f
	s.dropLatest(account)
	// Saves of this instance finish in any order: the newest version is
	// the latest only if no save counted more versions than it did.
	if v.Number == v.Total && v.Total == f.count {
		c := v
		c.Snapshot = store.CloneSnapshot(v.Snapshot)
		s.latest[account] = c
	}
}
