package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/xid"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/store/storetest"
)

// BenchmarkSave is Store.Save of one account's snapshots, one at a time,
// on a throwaway cluster (fsync off): the driver's and the database's
// work, not a disk's.
func BenchmarkSave(b *testing.B) {
	_, dsn := freshDSN(b)
	s := openTest(b, dsn, func(o *Options) { o.RetentionVersions = 1 << 30 })
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Save(ctx, store.SaveRequest{Snapshot: storetest.Snap("default", t0.Add(time.Duration(i)*time.Second), 1)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSaveTransaction is a save's transaction (the insert and the
// number query) on a database at schema 5 and at the current schema, in
// one run: the price of migration 0006's trigger (the account's seq drawn
// under its row lock) per save.
func BenchmarkSaveTransaction(b *testing.B) {
	for _, schema := range []int{5, SchemaVersion()} {
		b.Run(fmt.Sprintf("schema=%d", schema), func(b *testing.B) {
			_, dsn := freshDSN(b)
			ctx := context.Background()
			pool, err := pgxpool.New(ctx, dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer pool.Close()
			if _, err := Migrate(ctx, pool, schema, testLogger(nil)); err != nil {
				b.Fatal(err)
			}
			insert := `INSERT INTO usage_versions (id, account, scraped_s, scraped_ns, stored_at, idem_key, body_hash, snapshot)
				VALUES ($1, $2, $3, $4, $5, NULLIF($6::text, ''), $7, $8) ON CONFLICT (idem_key) DO NOTHING RETURNING seq`
			for i := 0; b.Loop(); i++ {
				sn := storetest.Snap("default", t0.Add(time.Duration(i)*time.Second), 1)
				raw, _ := json.Marshal(sn)
				ss, sns := split(sn.ScrapedAt)
				id := xid.New().String()
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					var seq int64
					if err := tx.QueryRow(ctx, insert, id, "default", ss, sns, time.Now().UTC(), "", "", raw).Scan(&seq); err != nil {
						return err
					}
					var n, total int
					return tx.QueryRow(ctx, placeSQL, "default", ss, sns, seq, `{}`).Scan(&n, &total, nil)
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
