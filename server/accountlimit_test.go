package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/store/pgstore"
	"github.com/claude-usage/widget/shared"
)

// pgReplica is a server on its own PostgreSQL store of the database dsn.
func pgReplica(t *testing.T, dsn string, cfg func(*Config)) *env {
	t.Helper()
	return newEnv(t, withConfig(cfg), wrapStore(func(store.Store) store.Store {
		st, err := pgstore.Open(context.Background(), pgstore.Options{DSN: dsn, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}))
}

// postAsync sends a POST through e's app on another goroutine (t.Fatal
// must stay on the test's).
func postAsync(e *env, body string) <-chan resp {
	out := make(chan resp, 1)
	go func() {
		req := httptest.NewRequest(http.MethodPost, shared.PathUsage, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(shared.HeaderAPIKey, testKey)
		res, err := e.srv.App().Test(req, -1)
		if err != nil {
			out <- resp{status: -1, body: []byte(err.Error())}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		out <- resp{status: res.StatusCode, header: res.Header, body: b}
	}()
	return out
}

// TestMaxAccountsAcrossReplicas: two replicas on one database race for
// the last account place. The first replica's save is held inside its
// insert (a test trigger waits on an advisory lock the test holds) while
// the second receives a POST for another new account. Counting each
// replica's own accounts let both in; the store's reservation makes the
// second wait for the first's commit and refuse with DESIGN's 403.
func TestMaxAccountsAcrossReplicas(t *testing.T) {
	t.Parallel()
	dsn := pgDSN(t)
	one := func(c *Config) { c.MaxAccounts = 1 }
	a := pgReplica(t, dsn, one)
	b := pgReplica(t, dsn, one)
	ctx := context.Background()
	control, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer control.Close(ctx)
	for _, q := range []string{
		`CREATE FUNCTION test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NEW; END $$`,
		`CREATE TRIGGER zz_test_hold BEFORE INSERT ON usage_versions
			FOR EACH ROW WHEN (NEW.account = 'first') EXECUTE FUNCTION test_hold()`,
		"SELECT pg_advisory_lock(4242)",
	} {
		if _, err := control.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	waiting := func(n int) func() bool {
		return func() bool {
			var got int
			// This database's sessions only: tests in other databases of
			// the cluster wait for advisory locks too (migrations at Open).
			_ = control.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
				WHERE NOT l.granted AND a.datname = current_database() AND l.locktype = 'advisory'`).Scan(&got)
			return got >= n
		}
	}
	within := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	first := postAsync(a, snap("first", t0.Add(-time.Minute), 10))
	within("the first save held in its insert", waiting(1))
	second := postAsync(b, snap("second", t0.Add(-time.Minute), 20))
	var r2 resp
	done := false
	within("the second POST answered or waiting for the reservation", func() bool {
		select {
		case r2 = <-second:
			done = true
			return true
		default:
			return waiting(2)()
		}
	})
	if _, err := control.Exec(ctx, "SELECT pg_advisory_unlock(4242)"); err != nil {
		t.Fatal(err)
	}
	r1 := <-first
	if !done {
		r2 = <-second
	}
	if r1.status != http.StatusCreated {
		t.Fatalf("the first POST = %d %s, want 201", r1.status, r1.body)
	}
	eb := wantError(t, r2, http.StatusForbidden, shared.CodeAccountLimit)
	if !strings.Contains(eb.Message, "at most 1 accounts") || !strings.Contains(eb.Message, `"second"`) {
		t.Errorf("message = %q, want the limit and the account refused", eb.Message)
	}
	var accounts int
	if err := control.QueryRow(ctx, "SELECT count(*) FROM usage_accounts WHERE versions > 0").Scan(&accounts); err != nil {
		t.Fatal(err)
	}
	if got, want := accounts, 1; got != want {
		t.Errorf("accounts in the database = %d, want %d", got, want)
	}
	// The account admitted keeps working through either replica.
	b.mustPost(snap("first", t0, 30))
}
