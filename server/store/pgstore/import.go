package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claude-usage/widget/server/store"
)

// importBatch is how many versions one transaction of Import writes: an
// interrupted import keeps every batch committed before, and the next run
// goes on from there.
const importBatch = 500

// Import copies versions (one account's, in order) into the database,
// keeping their ids, stored times, idempotency keys and body hashes. A
// version whose id is already there is skipped, so running it again is
// harmless and resumes an interrupted run. A version whose idempotency key
// belongs to another row already is skipped and counted in conflicts.
func (s *Store) Import(ctx context.Context, recs []store.Record) (inserted, present, conflicts int, err error) {
	for start := 0; start < len(recs); start += importBatch {
		batch := recs[start:min(start+importBatch, len(recs))]
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			for _, r := range batch {
				snap, err := store.CheckSave(store.SaveRequest{Snapshot: r.Snapshot, IdempotencyKey: r.IdempotencyKey, BodyHash: r.BodyHash})
				if err != nil {
					return fmt.Errorf("version %s: %w", r.ID, err)
				}
				raw, err := json.Marshal(snap)
				if err != nil {
					return fmt.Errorf("version %s: %w", r.ID, err)
				}
				ss, sns := split(snap.ScrapedAt)
				tag, err := tx.Exec(ctx, `INSERT INTO usage_versions (id, account, scraped_s, scraped_ns, stored_at, idem_key, body_hash, snapshot)
					VALUES ($1, $2, $3, $4, $5, NULLIF($6::text, ''), $7, $8) ON CONFLICT DO NOTHING`,
					r.ID, snap.Account, ss, sns, r.StoredAt.UTC().Truncate(time.Microsecond), r.IdempotencyKey, r.BodyHash, raw)
				if err != nil {
					return err
				}
				if tag.RowsAffected() == 1 {
					inserted++
					continue
				}
				var n int
				if err := tx.QueryRow(ctx, "SELECT count(*) FROM usage_versions WHERE id = $1", r.ID).Scan(&n); err != nil {
					return err
				}
				if n == 1 {
					present++
				} else {
					conflicts++
				}
			}
			return nil
		})
		if err != nil {
			return inserted, present, conflicts, s.storageError("importing versions", true, err)
		}
	}
	if len(recs) > 0 {
		if err := s.refreshAccount(ctx, recs[0].Snapshot.Account); err != nil {
			return inserted, present, conflicts, s.storageError("reloading the figures", false, err)
		}
	}
	return inserted, present, conflicts, nil
}

// Digest is the SHA-256 of versions in order, over what a copy must keep
// (id, stored time to the microsecond, key, body hash, snapshot): the
// migrate command compares it on both sides.
type Digest struct {
	Count int
	Sum   string
}

// NewDigest returns an empty digest writer; add records in order.
func NewDigest() *DigestWriter { return &DigestWriter{h: sha256.New()} }

// DigestWriter accumulates a Digest.
type DigestWriter struct {
	h hash.Hash
	n int
}

// Add adds one version.
func (d *DigestWriter) Add(r store.Record) {
	raw, _ := json.Marshal(r.Snapshot)
	fmt.Fprintf(d.h, "%s\n%s\n%s\n%s\n%s\n", r.ID, r.StoredAt.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano),
		r.IdempotencyKey, r.BodyHash, raw)
	d.n++
}

// Digest is what was added so far.
func (d *DigestWriter) Digest() Digest {
	return Digest{Count: d.n, Sum: hex.EncodeToString(d.h.Sum(nil))}
}

// DigestOf reads the versions with the given ids back from the database,
// in the version order, and digests them.
func (s *Store) DigestOf(ctx context.Context, account string, ids []string) (Digest, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+cols+", coalesce(v.idem_key, ''), v.body_hash FROM usage_versions v "+
		"WHERE v.account = $1 AND v.id = ANY($2) ORDER BY "+orderAsc, account, ids)
	if err != nil {
		return Digest{}, s.storageError("reading versions back", false, err)
	}
	d := NewDigest()
	var r row
	var key, bh string
	for rows.Next() {
		if err := rows.Scan(r.dest(&key, &bh)...); err != nil {
			rows.Close()
			return Digest{}, s.storageError("reading versions back", false, err)
		}
		snap, err := r.decode()
		if err != nil {
			rows.Close()
			return Digest{}, err
		}
		d.Add(store.Record{ID: r.id, StoredAt: r.storedAt, IdempotencyKey: key, BodyHash: bh, Snapshot: snap})
	}
	if err := rows.Err(); err != nil {
		return Digest{}, s.storageError("reading versions back", false, err)
	}
	return d.Digest(), nil
}

// ImportRollup stores a copied rollup of account as covering the
// versions ids (the copy's, imported before): through covers, the highest
// seq they have here; versions above it are applied on top. A rollup the
// database has through covers or beyond is kept (replaced false), unless
// it is one through covers that differs (built from the versions alone,
// say, by an earlier interrupted run).
func (s *Store) ImportRollup(ctx context.Context, account string, r *store.Rollup, ids []string) (covers int64, replaced bool, err error) {
	raw, err := r.Encode(account)
	if err != nil {
		return 0, false, err
	}
	if err := s.pool.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM usage_versions WHERE account = $1 AND id = ANY($2)",
		account, ids).Scan(&covers); err != nil {
		return 0, false, s.storageError("importing a rollup", false, err)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO usage_rollups AS o (account, through_seq, rollup) VALUES ($1, $2, $3)
		ON CONFLICT (account) DO UPDATE SET through_seq = EXCLUDED.through_seq, rollup = EXCLUDED.rollup, updated_at = now()
		WHERE o.through_seq < EXCLUDED.through_seq OR o.through_seq = EXCLUDED.through_seq AND o.rollup <> EXCLUDED.rollup`,
		account, covers, raw)
	if err != nil {
		return covers, false, s.storageError("importing a rollup", true, err)
	}
	if tag.RowsAffected() == 0 {
		return covers, false, nil
	}
	d, err := store.DecodeRollup(raw, account)
	if err != nil {
		return covers, false, err
	}
	d.SetThroughSeq(uint64(covers))
	s.mu.Lock()
	if old := s.rollups[account]; old == nil || old.ThroughSeq() <= uint64(covers) {
		s.rollups[account] = d
	}
	s.mu.Unlock()
	// Versions stored here after the copy's (by a server already running
	// on the database) go on top; should this fail, the figures refresh
	// finds the account behind.
	_ = s.catchUp(ctx, account, covers)
	return covers, true, nil
}

// StoredRollup is the account's rollup as the database holds it and the
// seq it covers through; nil when there is none.
func (s *Store) StoredRollup(ctx context.Context, account string) (*store.Rollup, int64, error) {
	var through int64
	var raw []byte
	err := s.pool.QueryRow(ctx, "SELECT through_seq, rollup FROM usage_rollups WHERE account = $1", account).Scan(&through, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, s.storageError("reading a rollup", false, err)
	}
	r, err := store.DecodeRollup(raw, account)
	if err != nil {
		return nil, 0, err
	}
	return r, through, nil
}

// ImportAlertClaims records copied alert claims (ids already claimed
// here are kept as they are) and keeps the newest store.MaxClaims, as
// ClaimAlert does.
func (s *Store) ImportAlertClaims(ctx context.Context, claims []store.AlertClaim) (inserted int, err error) {
	ids := make([]string, len(claims))
	ats := make([]time.Time, len(claims))
	for i, c := range claims {
		ids[i], ats[i] = c.ID, c.At.UTC()
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO usage_alert_claims (id, at) SELECT * FROM unnest($1::text[], $2::timestamptz[])
			ON CONFLICT (id) DO NOTHING`, ids, ats)
		if err != nil {
			return err
		}
		inserted = int(tag.RowsAffected())
		_, err = tx.Exec(ctx, `DELETE FROM usage_alert_claims WHERE id IN
			(SELECT id FROM usage_alert_claims ORDER BY at DESC OFFSET $1)`, store.MaxClaims)
		return err
	})
	if err != nil {
		return 0, s.storageError("importing alert claims", true, err)
	}
	return inserted, nil
}

// AlertClaims lists the claimed alert ids, oldest first (the migrate
// command's verification).
func (s *Store) AlertClaims(ctx context.Context) ([]store.AlertClaim, error) {
	rows, err := s.pool.Query(ctx, "SELECT id, at FROM usage_alert_claims ORDER BY at, id")
	if err != nil {
		return nil, s.storageError("reading alert claims", false, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AlertClaim, error) {
		var c store.AlertClaim
		err := r.Scan(&c.ID, &c.At)
		c.At = c.At.UTC()
		return c, err
	})
	if err != nil {
		return nil, s.storageError("reading alert claims", false, err)
	}
	return out, nil
}
