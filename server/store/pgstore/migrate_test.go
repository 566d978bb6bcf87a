package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/store/storetest"
	"github.com/claude-usage/widget/shared"
)

func TestMigrationsAreNumbered(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(ms); got < 2 {
		t.Fatalf("%d migrations, want at least 2", got)
	}
	for i, m := range ms {
		if m.Version != i+1 || !strings.HasPrefix(m.Name, "000") || strings.TrimSpace(m.SQL) == "" {
			t.Errorf("migration %d = %d %q", i, m.Version, m.Name)
		}
	}
}

func schemaRows(t *testing.T, dsn string) []int {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	rows, _ := c.Query(ctx, "SELECT version FROM usage_schema_migrations ORDER BY version")
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestMigrateFromEmpty(t *testing.T) {
	t.Parallel()
	_, dsn := freshDSN(t)
	s := openTest(t, dsn, nil)
	want := SchemaVersion()
	if got := schemaRows(t, dsn); len(got) != want || got[len(got)-1] != want {
		t.Errorf("usage_schema_migrations = %v, want 1..%d", got, want)
	}
	db := s.Status().Database
	if db == nil || !db.Reachable || db.SchemaVersion != want || !db.MigrationsCurrent() || db.Latency <= 0 {
		t.Errorf("Status().Database = %+v, want reachable at version %d with a latency", db, want)
	}
	// A second Open finds nothing to do.
	var log testutil.LogBuffer
	openTest(t, dsn, func(o *Options) { o.Logger = testLogger(&log) })
	if n := len(testutil.LogRecords(t, log.String(), "applied a schema migration")); n != 0 {
		t.Errorf("a second Open applied %d migrations, want 0", n)
	}
}

// TestMigrateFromPreviousVersion opens a database at the previous schema
// version with data in it, then the current binary: the data is kept and
// what the new migration adds works.
func TestMigrateFromPreviousVersion(t *testing.T) {
	t.Parallel()
	_, dsn := freshDSN(t)
	prev := SchemaVersion() - 1
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Migrate(ctx, pool, prev, testLogger(nil)); err != nil || got != prev {
		t.Fatalf("Migrate to %d = %d, %v", prev, got, err)
	}
	// The version row as the previous release wrote it.
	raw, _ := json.Marshal(storetest.Snap("default", t0, 42))
	const id = "d4k2abcdefghijklmnop"
	if _, err := pool.Exec(ctx, `INSERT INTO usage_versions (id, account, scraped_s, scraped_ns, stored_at, idem_key, body_hash, snapshot)
		VALUES ($1, 'default', $2, 0, now(), 'k1', 'h', $3)`, id, t0.Unix(), raw); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	if got := schemaRows(t, dsn); len(got) != prev {
		t.Fatalf("at the previous version: migrations %v, want %d", got, prev)
	}
	s := openTest(t, dsn, nil)
	if got := schemaRows(t, dsn); len(got) != SchemaVersion() {
		t.Fatalf("after upgrading: migrations %v, want %d", got, SchemaVersion())
	}
	latest, err := s.Latest(context.Background(), "default")
	if err != nil || latest.ID != id || latest.Total != 1 || latest.Snapshot.Meters[0].PercentUsed != 42 {
		t.Fatalf("Latest after upgrading = %s, %v; want %s", latest.ID, err, id)
	}
	if kept, err := s.SaveScraperStatus(ctx, shared.ScraperStatus{At: t0, OK: true}); err != nil || !kept {
		t.Errorf("SaveScraperStatus after upgrading = %v, %v", kept, err)
	}
	again, err := s.Save(ctx, store.SaveRequest{Snapshot: storetest.Snap("default", t0, 42), IdempotencyKey: "k1", BodyHash: "h"})
	if err != nil || !again.Replayed || again.Version.ID != id {
		t.Errorf("replay of a key stored before the upgrade = %+v, %v; want the original", again, err)
	}
	// 0006: a save after the upgrade names the version before it.
	next := save(t, s, "default", t0.Add(time.Minute), 43)
	var before int64
	if err := s.pool.QueryRow(ctx, "SELECT prev_seq FROM usage_versions WHERE id = $1", next.Version.ID).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if got, want := before, mustSeq(t, s, id); got != want {
		t.Errorf("prev_seq of the first save after upgrading = %d, want the older version's seq %d", got, want)
	}
}

// TestReplicasMigrateOnce starts several stores on an empty database at
// once: the advisory lock lets one migrate, the others find it done.
func TestReplicasMigrateOnce(t *testing.T) {
	t.Parallel()
	_, dsn := freshDSN(t)
	const n = 4
	var log testutil.LogBuffer
	var wg sync.WaitGroup
	stores := make([]*Store, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(context.Background(), Options{DSN: dsn, Logger: testLogger(&log), MaxConns: 2})
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	if got, want := len(testutil.LogRecords(t, log.String(), "applied a schema migration")), SchemaVersion(); got != want {
		t.Errorf("migrations applied across %d replicas = %d, want %d", n, got, want)
	}
	if got := schemaRows(t, dsn); len(got) != SchemaVersion() {
		t.Errorf("usage_schema_migrations = %v", got)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	db, dsn := freshDSN(t)
	openTest(t, dsn, nil).Close()
	pg.Exec(t, db, "INSERT INTO usage_schema_migrations (version, name) VALUES (999, '0999_future.sql')")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, Options{DSN: dsn, Logger: testLogger(nil)})
	if err == nil || !strings.Contains(err.Error(), "version 999, newer than this binary's") {
		t.Errorf("Open on a newer schema = %v, want a refusal naming the versions", err)
	}
}

// TestSchemaMovedOnWhileRunning: another replica (a newer binary) migrated
// the database; this one's write check says so and health turns unhealthy
// instead of writing to a schema it does not know.
func TestSchemaMovedOnWhileRunning(t *testing.T) {
	t.Parallel()
	db, dsn := freshDSN(t)
	s := openTest(t, dsn, nil)
	pg.Exec(t, db, "INSERT INTO usage_schema_migrations (version, name) VALUES (999, '0999_future.sql')")
	err := s.CheckWritable(context.Background())
	if codeOf(err) != shared.CodeStorageUnavailable || !strings.Contains(err.Error(), "at version 999, this binary expects") {
		t.Fatalf("CheckWritable = %v", err)
	}
	st := s.Status()
	if st.Writable || st.Database.MigrationsCurrent() || st.Database.SchemaVersion != 999 {
		t.Errorf("Status = writable %v, database %+v", st.Writable, st.Database)
	}
}

// TestCountsFollowEveryWrite: the per-account counter (migration 0003)
// matches the rows after saves, retention, quarantine and writes behind
// the store's back.
func TestCountsFollowEveryWrite(t *testing.T) {
	t.Parallel()
	db, dsn := freshDSN(t)
	s := openTest(t, dsn, func(o *Options) { o.RetentionVersions, o.RetentionDays = 3, 1 })
	ctx := context.Background()
	for i := range 6 {
		save(t, s, "default", t0.Add(time.Duration(i)*time.Minute), 1)
	}
	save(t, s, "work", t0, 1)
	pg.Exec(t, db, `INSERT INTO usage_versions (id, account, scraped_s, scraped_ns, stored_at, snapshot)
		VALUES ('behindthebackxxxxxxx', 'work', 1, 0, now(), '{}')`)
	pg.Exec(t, db, "DELETE FROM usage_versions WHERE id = (SELECT id FROM usage_versions WHERE account = 'default' ORDER BY seq LIMIT 1)")
	if _, err := s.Retain(ctx); err != nil {
		t.Fatal(err)
	}
	s.quarantine(ctx, mustSeq(t, s, "behindthebackxxxxxxx"), "test")
	rows, err := s.pool.Query(ctx, `SELECT a.account, a.versions, (SELECT count(*) FROM usage_versions v WHERE v.account = a.account)
		FROM usage_accounts a ORDER BY a.account`)
	if err != nil {
		t.Fatal(err)
	}
	var got, mismatched []string
	var a string
	var n, c int
	if _, err := pgx.ForEachRow(rows, []any{&a, &n, &c}, func() error {
		got = append(got, a)
		if n != c || n == 0 {
			mismatched = append(mismatched, fmt.Sprintf("%s: counter %d, rows %d", a, n, c))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// How many retention leaves depends on whether its background run came
	// before the delete behind its back; the counter must match either way.
	if want := []string{"default", "work"}; !slices.Equal(got, want) || len(mismatched) > 0 {
		t.Errorf("accounts %v (want %v), mismatched %v", got, want, mismatched)
	}
}

func mustSeq(t *testing.T, s *Store, id string) int64 {
	t.Helper()
	var seq int64
	if err := s.pool.QueryRow(context.Background(), "SELECT seq FROM usage_versions WHERE id = $1", id).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	return seq
}
