package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/shared"
)

// TestErrorMapping: the SQLSTATEs a test cannot make a real server return
// (a full disk on the database server) are injected as the PgError pgx
// returns; the others are also caused for real below.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	s := &Store{where: "postgres://u@h/db", log: testLogger(nil)}
	cases := []struct {
		name  string
		err   error
		write bool
		code  shared.Code
		kind  errKind
	}{
		{"disk full", &pgconn.PgError{Code: "53100", Message: "could not extend file"}, true, shared.CodeStorageDiskFull, kindNoSpace},
		{"insufficient privilege", &pgconn.PgError{Code: "42501", Message: "permission denied"}, true, shared.CodeStoragePermissionDenied, kindPerm},
		{"read-only transaction", &pgconn.PgError{Code: "25006"}, true, shared.CodeStoragePermissionDenied, kindPerm},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, true, shared.CodeStorageWriteFailed, kindTransient},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, false, shared.CodeStorageReadFailed, kindTransient},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, false, shared.CodeStorageUnavailable, kindUnavailable},
		{"too many connections", &pgconn.PgError{Code: "53300"}, false, shared.CodeStorageUnavailable, kindUnavailable},
		{"bad value", &pgconn.PgError{Code: "22P05"}, true, shared.CodeValidationFailed, kindData},
		{"timeout", fmt.Errorf("query: %w", context.DeadlineExceeded), false, shared.CodeStorageUnavailable, kindUnavailable},
		{"other", &pgconn.PgError{Code: "XX000"}, true, shared.CodeStorageWriteFailed, kindOther},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.err); got != tc.kind {
				t.Errorf("classify = %d, want %d", got, tc.kind)
			}
			se := s.storageError("saving", tc.write, tc.err)
			if got, want := se.Code, tc.code; got != want {
				t.Errorf("code = %s, want %s", got, want)
			}
			if !strings.Contains(se.Message, s.where) {
				t.Errorf("message %q does not name the database", se.Message)
			}
		})
	}
}

// TestUnreachableDatabase: nothing listens on the port. Open fails with
// STORAGE_UNAVAILABLE and the message carries no password.
func TestUnreachableDatabase(t *testing.T) {
	t.Parallel()
	addr := testutil.FreeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, Options{DSN: "postgres://usage:s3cretpassw0rd@" + addr + "/usage?sslmode=disable", Logger: testLogger(nil)})
	if got, want := codeOf(err), shared.CodeStorageUnavailable; got != want {
		t.Fatalf("Open on a closed port: %v, want %s", err, want)
	}
	if strings.Contains(err.Error(), "s3cretpassw0rd") {
		t.Errorf("the error shows the password: %v", err)
	}
	if got := Redact("postgres://usage:s3cretpassw0rd@h/db?password=other"); strings.Contains(got, "s3cret") || strings.Contains(got, "other") {
		t.Errorf("Redact = %q", got)
	}
}

// TestDatabaseStopsAndComesBack stops a real cluster of its own under an
// open store: saves fail with STORAGE_UNAVAILABLE, the breaker opens and
// then answers without asking, health's figures say so; once the cluster
// is back a write check closes the breaker and saves work again.
func TestDatabaseStopsAndComesBack(t *testing.T) {
	t.Parallel()
	own, err := testutil.StartPostgres()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(own.Close)
	db := own.NewDatabase(t)
	var log testutil.LogBuffer
	s := openTest(t, own.DSN(db), func(o *Options) { o.Logger = testLogger(&log); o.recoverEvery = 50 * time.Millisecond })
	save(t, s, "default", t0, 1)
	if err := own.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 {
		_, err := s.Save(ctx, saveReq("default", t0.Add(time.Duration(i+1)*time.Minute), 2, ""))
		if got, want := codeOf(err), shared.CodeStorageUnavailable; got != want {
			t.Fatalf("save %d with the database stopped: %v, want %s", i, err, want)
		}
	}
	if got, want := s.Status().Breaker, shared.StateOpen; got != want {
		t.Fatalf("breaker after 3 failures = %v, want %v", got, want)
	}
	start := time.Now()
	_, err = s.ByNumber(ctx, "default", 1)
	if codeOf(err) != shared.CodeStorageUnavailable || !strings.Contains(err.Error(), "not asking the database") {
		t.Errorf("read with the breaker open = %v, want STORAGE_UNAVAILABLE without asking", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("the open breaker took %s to answer", d)
	}
	if err := s.CheckWritable(ctx); codeOf(err) != shared.CodeStorageUnavailable {
		t.Errorf("CheckWritable with the database stopped = %v", err)
	}
	if st := s.Status(); st.Writable || st.Database.Reachable {
		t.Errorf("Status with the database stopped: writable %v reachable %v, want both false", st.Writable, st.Database.Reachable)
	}
	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "breaker closed after the database came back", func() bool {
		return s.Status().Breaker == shared.StateClosed
	})
	if _, err := s.Save(ctx, saveReq("default", t0.Add(time.Hour), 3, "")); err != nil {
		t.Errorf("save after the database came back: %v", err)
	}
	if got, want := s.Count("default"), 2; got != want {
		t.Errorf("Count = %d, want %d", got, want)
	}
	if !log.Contains("database write check passed while the breaker was open") {
		t.Error("recovery not logged")
	}
}

// TestPermissionDenied connects as a role that may read but not write:
// saves are STORAGE_PERMISSION_DENIED (42501) and the write check says so.
func TestPermissionDenied(t *testing.T) {
	t.Parallel()
	db, dsn := freshDSN(t)
	openTest(t, dsn, nil).Close()
	role := "reader_" + db
	pg.Exec(t, db, fmt.Sprintf("CREATE ROLE %s LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO %s", role, role))
	s := openTest(t, pg.UserDSN(role, db), nil)
	_, err := s.Save(context.Background(), saveReq("default", t0, 1, ""))
	if got, want := codeOf(err), shared.CodeStoragePermissionDenied; got != want {
		t.Fatalf("save as a read-only role: %v, want %s", err, want)
	}
	if !strings.Contains(err.Error(), "42501") {
		t.Errorf("message %q does not give the SQLSTATE", err)
	}
	if st := s.Status(); st.Writable || codeOf(st.WriteErr) != shared.CodeStoragePermissionDenied {
		t.Errorf("Status: writable %v, %v; want not writable, permission denied", st.Writable, st.WriteErr)
	}
}

// TestSerializationFailureRetried makes a real 40001: two serializable
// transactions that read what the other writes. The store's retry runs the
// losing one again and it succeeds.
func TestSerializationFailureRetried(t *testing.T) {
	t.Parallel()
	db, dsn := freshDSN(t)
	var log testutil.LogBuffer
	s := openTest(t, dsn, func(o *Options) { o.Logger = testLogger(&log) })
	pg.Exec(t, db, "CREATE TABLE skew (k int, v int); INSERT INTO skew VALUES (0, 1)")
	ctx := context.Background()
	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	serializable := pgx.TxOptions{IsoLevel: pgx.Serializable}
	var attempts atomic.Int32
	err = s.retry(ctx, "test", func(ctx context.Context) error {
		n := attempts.Add(1)
		return pgx.BeginTxFunc(ctx, s.pool, serializable, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO skew SELECT 1, sum(v) FROM skew"); err != nil {
				return err
			}
			if n > 1 {
				return nil
			}
			// The other transaction reads what this one will not see
			// committed, writes, and commits first.
			return pgx.BeginTxFunc(ctx, other, serializable, func(tx2 pgx.Tx) error {
				_, err := tx2.Exec(ctx, "INSERT INTO skew SELECT 2, sum(v) FROM skew")
				return err
			})
		})
	})
	if err != nil {
		t.Fatalf("retry = %v, want success after a retry", err)
	}
	if got, want := attempts.Load(), int32(2); got != want {
		t.Errorf("attempts = %d, want %d", got, want)
	}
	recs := testutil.LogRecords(t, log.String(), "transient database error")
	if len(recs) != 1 || !strings.Contains(fmt.Sprint(recs[0]["error"]), "40001") {
		t.Errorf("transient log lines = %v, want one naming 40001", recs)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		t.Errorf("err = %v", err)
	}
}

// TestInjectedDiskFullOpensBreaker: three 53100s in a row open the breaker
// like three ENOSPCs do in the file store.
func TestInjectedDiskFullOpensBreaker(t *testing.T) {
	t.Parallel()
	_, dsn := freshDSN(t)
	s := openTest(t, dsn, nil)
	full := &pgconn.PgError{Code: "53100", Message: "could not extend file: No space left on device"}
	for i := range 3 {
		err := s.do(context.Background(), "saving a snapshot", true, func(context.Context) error { return full })
		if got, want := codeOf(err), shared.CodeStorageDiskFull; got != want {
			t.Fatalf("attempt %d: %v, want %s", i, err, want)
		}
		if got, want := shared.CodeStorageDiskFull.Status(), 507; got != want {
			t.Fatalf("status = %d", got)
		}
	}
	if got, want := s.Status().Breaker, shared.StateOpen; got != want {
		t.Errorf("breaker = %v, want %v", got, want)
	}
}
