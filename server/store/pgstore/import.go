package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// ImportRollup stores a copied rollup of account as covering every version
// the account has now (the copy was made from the same versions). A rollup
// the database has that covers later versions is kept.
func (s *Store) ImportRollup(ctx context.Context, account string, r *store.Rollup) error {
	raw, err := r.Encode(account)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO usage_rollups AS o (account, through_seq, rollup)
		VALUES ($1, coalesce((SELECT max(seq) FROM usage_versions WHERE account = $1), 0), $2)
		ON CONFLICT (account) DO UPDATE SET through_seq = EXCLUDED.through_seq, rollup = EXCLUDED.rollup, updated_at = now()
		WHERE o.through_seq <= EXCLUDED.through_seq`, account, raw)
	if err != nil {
		return s.storageError("importing a rollup", true, err)
	}
	d, err := store.DecodeRollup(raw, account)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.rollups[account] = d
	s.mu.Unlock()
	return nil
}
