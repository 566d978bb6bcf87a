package pgstore

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/server/store/storetest"
)

func openTestPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// TestCorruptRows: rows whose snapshot does not decode or validate are
// moved to usage_corrupt_versions at Open, counted and logged; one that
// appears later is moved when a read meets it, and the read answers from
// the others.
func TestCorruptRows(t *testing.T) {
	t.Parallel()
	db, dsn := freshDSN(t)
	s := openTest(t, dsn, nil)
	good := save(t, s, "default", t0, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wrongAccount, _ := json.Marshal(storetest.Snap("other", t0.Add(time.Minute), 1))
	badPercent := storetest.Snap("default", t0.Add(2*time.Minute), 1)
	badPercent.Meters[0].PercentUsed = 400
	bad, _ := json.Marshal(badPercent)
	for i, raw := range [][]byte{[]byte(`{"meters": "not a list"}`), wrongAccount, bad} {
		pg.Exec(t, db, `INSERT INTO usage_versions (id, account, scraped_s, scraped_ns, stored_at, snapshot)
			VALUES ($1, 'default', $2, 0, now(), $3)`, "corrupt0000000000000"[:19]+string(rune('a'+i)), t0.Add(time.Duration(i+1)*time.Minute).Unix(), raw)
	}
	var log testutil.LogBuffer
	s2 := openTest(t, dsn, func(o *Options) { o.Logger = testLogger(&log) })
	if got, want := s2.Status().CorruptFiles, 3; got != want {
		t.Errorf("CorruptFiles = %d, want %d", got, want)
	}
	if got, want := len(testutil.LogRecords(t, log.String(), "corrupt version row moved to quarantine")), 3; got != want {
		t.Errorf("quarantine log lines = %d, want %d", got, want)
	}
	if got, want := s2.Count("default"), 1; got != want {
		t.Errorf("Count = %d, want %d", got, want)
	}

	// Written behind the store's back after Open, and the newest.
	pg.Exec(t, db, `INSERT INTO usage_versions (id, account, scraped_s, scraped_ns, stored_at, snapshot)
		VALUES ('corrupt000000000000z', 'default', $1, 0, now(), '{"account": 5}')`, t0.Add(time.Hour).Unix())
	v, err := s2.Latest(context.Background(), "default")
	if err != nil || v.ID != good.Version.ID || v.Total != 1 {
		t.Errorf("Latest with a corrupt newest row = %s (of %d), %v; want %s", v.ID, v.Total, err, good.Version.ID)
	}
	if got, want := s2.Status().CorruptFiles, 4; got != want {
		t.Errorf("CorruptFiles after a read met one = %d, want %d", got, want)
	}
}
