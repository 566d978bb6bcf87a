package storetest_test

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/store/pgstore"
	"github.com/claude-usage/widget/server/store/storetest"
)

var pg *testutil.Postgres

func TestMain(m *testing.M) {
	code := testutil.RunWithPostgres(m, func(p *testutil.Postgres) { pg = p })
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

func logger() *slog.Logger {
	if os.Getenv("STORE_TEST_LOG") != "" {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

func TestFileStore(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		New: func(t *testing.T) string { return t.TempDir() },
		Open: func(t *testing.T, dir string, o storetest.Options) store.Store {
			s, err := store.Open(context.Background(), store.Options{Dir: dir, Logger: logger(),
				RetentionVersions: o.RetentionVersions, RetentionDays: o.RetentionDays})
			if err != nil {
				t.Fatalf("store.Open: %v", err)
			}
			return s
		},
		Retain: func(t *testing.T, s store.Store) { s.(*store.FileStore).RunRetention() },
	})
}

func TestPostgres(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		New: func(t *testing.T) string { return pg.DSN(pg.NewDatabase(t)) },
		Open: func(t *testing.T, dsn string, o storetest.Options) store.Store {
			s, err := pgstore.Open(context.Background(), pgstore.Options{DSN: dsn, Logger: logger(), MaxConns: 4,
				RetentionVersions: o.RetentionVersions, RetentionDays: o.RetentionDays})
			if err != nil {
				t.Fatalf("pgstore.Open: %v", err)
			}
			return s
		},
		Retain: func(t *testing.T, s store.Store) {
			if _, err := s.(*pgstore.Store).Retain(context.Background()); err != nil {
				t.Fatalf("Retain: %v", err)
			}
		},
		Shared: true,
	})
}
