package storemigrate_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/server"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/store/pgstore"
	"github.com/claude-usage/widget/server/store/storetest"
	"github.com/claude-usage/widget/server/storemigrate"
	"github.com/claude-usage/widget/shared"
)

var pg *testutil.Postgres

func TestMain(m *testing.M) {
	code := testutil.RunWithPostgres(m, func(p *testutil.Postgres) { pg = p })
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var quiet = slog.New(slog.DiscardHandler)

// fileStore fills a file store: two accounts, a tie, keys, a late
// snapshot and a scraper report.
func fileStore(t *testing.T) (dir string, recs map[string][]store.Record) {
	t.Helper()
	dir = t.TempDir()
	ctx := context.Background()
	s, err := store.Open(ctx, store.Options{Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t0 := storetest.T0
	for i, off := range []int{0, 10, 10, 30, 20, 40} {
		req := store.SaveRequest{Snapshot: storetest.Snap("default", t0.Add(time.Duration(off)*time.Minute), float64(i)),
			IdempotencyKey: fmt.Sprintf("key-%d", i), BodyHash: fmt.Sprintf("h%d", i)}
		if _, err := s.Save(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Save(ctx, store.SaveRequest{Snapshot: storetest.Snap("work", t0, 7)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveScraperStatus(ctx, shared.ScraperStatus{Account: "work", At: t0, Category: "NOT_LOGGED_IN"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePushSubscription(ctx, store.PushSubscription{Endpoint: "https://push.example/1", CreatedAt: t0}, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := s.VAPIDKeys(ctx, func() (store.VAPIDKeys, error) { return store.VAPIDKeys{Public: "pubkey", Private: "privkey"}, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnqueueDelivery(ctx, store.Delivery{Key: "d1", Channel: "webhook", Payload: []byte(`{}`)}, 10); err != nil {
		t.Fatal(err)
	}
	recs = map[string][]store.Record{"default": s.Records("default"), "work": s.Records("work")}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, recs
}

func openPG(t *testing.T, dsn string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), pgstore.Options{DSN: dsn, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestCopyKeepsEverything(t *testing.T) {
	t.Parallel()
	dir, recs := fileStore(t)
	dsn := pg.DSN(pg.NewDatabase(t))
	var out bytes.Buffer
	// Through the command, as an operator runs it.
	if err := server.Run(context.Background(), []string{"migrate", "--from", "file", "--data-dir", dir, "--to", dsn}, &out, &out); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	for _, want := range []string{"account default: 6 versions (6 copied, 0 already there, 0 idempotency-key conflicts)",
		"account work: 1 versions (1 copied", ": verified", "done: 2 accounts verified", "scraper reports: 1 copied, 0 already there",
		"account default: rollup file sha256 ", "alerts: push subscriptions: 1 in the file store",
		"alerts: queued webhook deliveries: 1 in the file store"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var rollups int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM usage_rollups").Scan(&rollups)
	conn.Close(ctx)
	if err != nil || rollups != 2 {
		t.Errorf("rollups copied = %d, %v; want 2", rollups, err)
	}
	s := openPG(t, dsn)
	for a, rs := range recs {
		vs, err := s.History(ctx, a, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != len(rs) {
			t.Fatalf("%s: %d versions in PostgreSQL, want %d", a, len(vs), len(rs))
		}
		for i, v := range vs {
			r := rs[i]
			if v.ID != r.ID || v.Number != i+1 || !v.StoredAt.Equal(r.StoredAt.Truncate(time.Microsecond)) ||
				!v.Snapshot.ScrapedAt.Equal(r.Snapshot.ScrapedAt) || v.Snapshot.Meters[0].PercentUsed != r.Snapshot.Meters[0].PercentUsed {
				t.Errorf("%s version %d = %s %s, want %s %s", a, i+1, v.ID, v.StoredAt, r.ID, r.StoredAt)
			}
		}
	}
	// A scraper's retry of a snapshot sent before the move replays.
	r := recs["default"][2]
	res, err := s.Save(ctx, store.SaveRequest{Snapshot: r.Snapshot, IdempotencyKey: r.IdempotencyKey, BodyHash: r.BodyHash})
	if err != nil || !res.Replayed || res.Version.ID != r.ID {
		t.Errorf("replay after migrating = %+v, %v; want version %s replayed", res, err, r.ID)
	}
	if sc, ok := s.ScraperStatus("work"); !ok || sc.Category != "NOT_LOGGED_IN" {
		t.Errorf("scraper status after migrating = %+v, %v", sc, ok)
	}

	// The alert state came along: the browsers' subscription, the key
	// pair they subscribed with, the queued delivery.
	if subs, err := s.PushSubscriptions(ctx); err != nil || len(subs) != 1 {
		t.Errorf("push subscriptions after migrating = %+v, %v", subs, err)
	}
	if k, err := s.VAPIDKeys(ctx, func() (store.VAPIDKeys, error) { return store.VAPIDKeys{Public: "other"}, nil }); err != nil || k.Public != "pubkey" {
		t.Errorf("VAPID keys after migrating = %+v, %v; want the file store's", k, err)
	}
	if q, err := s.Deliveries(ctx, "webhook"); err != nil || len(q) != 1 {
		t.Errorf("queue after migrating = %+v, %v", q, err)
	}

	// The rollup came along: the same windows.
	fsrc, err := store.Open(ctx, store.Options{Dir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := fsrc.Windows(ctx, "default", "session", 0)
	_ = fsrc.Close()
	got, err := s.Windows(ctx, "default", "session", 0)
	if err != nil || len(want) == 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("windows after migrating = %+v, %v; want the file store's %+v", got, err, want)
	}

	// Idempotent: a second run copies nothing and verifies again.
	out.Reset()
	if err := storemigrate.Copy(ctx, storemigrate.Options{From: "file", DataDir: dir, To: dsn}, &out, quiet); err != nil {
		t.Fatalf("second run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"account default: 6 versions (0 copied, 6 already there", "scraper reports: 0 copied, 1 already there",
		"alerts: the database had an alert state already: nothing of it copied again", "done: 2 accounts verified"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("second run output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "MISMATCH") {
		t.Errorf("second run found a mismatch:\n%s", out.String())
	}
	if got, want := s.Count("default"), 6; got != want {
		t.Errorf("Count after two runs = %d, want %d", got, want)
	}
}

// TestCopyResumes: a run that stopped after some versions (here: the
// first three copied by hand) is finished by the next.
func TestCopyResumes(t *testing.T) {
	t.Parallel()
	dir, recs := fileStore(t)
	dsn := pg.DSN(pg.NewDatabase(t))
	s := openPG(t, dsn)
	if ins, _, _, err := s.Import(context.Background(), recs["default"][:3]); err != nil || ins != 3 {
		t.Fatalf("Import = %d, %v", ins, err)
	}
	var out bytes.Buffer
	if err := storemigrate.Copy(context.Background(), storemigrate.Options{From: "file", DataDir: dir, To: dsn}, &out, quiet); err != nil {
		t.Fatalf("Copy: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "account default: 6 versions (3 copied, 3 already there, 0 idempotency-key conflicts)") {
		t.Errorf("output:\n%s", out.String())
	}
}

// TestCopyDetectsAMismatch: a row that differs from its file fails the
// verification.
func TestCopyDetectsAMismatch(t *testing.T) {
	t.Parallel()
	dir, recs := fileStore(t)
	db := pg.NewDatabase(t)
	dsn := pg.DSN(db)
	var out bytes.Buffer
	if err := storemigrate.Copy(context.Background(), storemigrate.Options{From: "file", DataDir: dir, To: dsn}, &out, quiet); err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, db, "UPDATE usage_versions SET snapshot = jsonb_set(snapshot, '{source}', '\"elsewhere\"') WHERE id = $1", recs["default"][1].ID)
	out.Reset()
	err := storemigrate.Copy(context.Background(), storemigrate.Options{From: "file", DataDir: dir, To: dsn}, &out, quiet)
	if err == nil || !strings.Contains(err.Error(), "[default] does not match") || !strings.Contains(out.String(), "MISMATCH") {
		t.Errorf("Copy over a changed row = %v\n%s", err, out.String())
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		err  string
	}{
		{"no target", []string{"--data-dir", "x"}, "--to"},
		{"unknown source", []string{"--from", "s3", "--to", "postgres://h/db"}, "--from must be file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := storemigrate.Parse(tc.args, func(string) string { return "" }, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%v) = %v, want an error naming %q", tc.args, err, tc.err)
			}
		})
	}
}
