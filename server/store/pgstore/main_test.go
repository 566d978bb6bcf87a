package pgstore

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/server/store/storetest"
	"github.com/claude-usage/widget/shared"
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

func testLogger(b *testutil.LogBuffer) *slog.Logger {
	if b != nil {
		return slog.New(slog.NewJSONHandler(b, nil))
	}
	if os.Getenv("STORE_TEST_LOG") != "" {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// openTest opens a store on dsn, closed at cleanup; mod may change the
// options.
func openTest(t testing.TB, dsn string, mod func(*Options)) *Store {
	t.Helper()
	o := Options{DSN: dsn, Logger: testLogger(nil), MaxConns: 4}
	if mod != nil {
		mod(&o)
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func freshDSN(t testing.TB) (db, dsn string) {
	db = pg.NewDatabase(t)
	return db, pg.DSN(db)
}

var t0 = storetest.T0

func save(t testing.TB, s *Store, account string, at time.Time, pct float64) SaveResultT {
	t.Helper()
	res, err := s.Save(context.Background(), saveReq(account, at, pct, ""))
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	return res
}

func codeOf(err error) shared.Code { return storetest.CodeOf(err) }

// eventually polls cond every 10 ms for at most d: what it waits for
// crosses a real database connection (a NOTIFY), which no fake clock
// reaches.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
