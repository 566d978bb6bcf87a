//go:build !js

package chaos_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/shared"
)

// balancer is the test's load balancer: round robin over the replicas, and
// on a connection error the next one, as nginx's proxy_next_upstream and
// Caddy's retries do. A POST whose replica died after storing it is thus
// sent again to the other one: idempotency must make that one version.
type balancer struct {
	backends []string
	next     atomic.Uint32
	client   *http.Client
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	first := int(b.next.Add(1))
	for i := range b.backends {
		be := b.backends[(first+i)%len(b.backends)]
		req, err := http.NewRequestWithContext(r.Context(), r.Method, be+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			continue
		}
		req.Header = r.Header.Clone()
		resp, err := b.client.Do(req)
		if err != nil {
			continue
		}
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		_ = resp.Body.Close()
		return
	}
	http.Error(w, "no replica answered", http.StatusBadGateway)
}

// TestReplicasSoak drains 1000 snapshots from an outbox through a load
// balancer in front of two usage-server replicas on one PostgreSQL
// database, while the replicas are SIGKILLed and restarted at random and
// the database is stopped and started once: exactly 1000 versions, none
// doubled, and the outbox held what could not be sent meanwhile.
func TestReplicasSoak(t *testing.T) {
	t.Parallel()
	const total, kills = 1000, 6
	pg, err := testutil.StartPostgres()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	db := pg.NewDatabase(t)
	dsn := pg.DSN(db)
	replicas := []*server{
		startServer(t, "", "--store", dsn, "--retention-versions", "5000"),
		startServer(t, "", "--store", dsn, "--retention-versions", "5000"),
	}
	lb := &balancer{backends: []string{replicas[0].url(), replicas[1].url()},
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	front := httptest.NewServer(lb)
	t.Cleanup(front.Close)

	var unavailable atomic.Int32
	s := newSoak(t, front.URL, total, 2, 200*time.Second, func(rt http.RoundTripper) http.RoundTripper {
		return count503{&unavailable, rt}
	})
	at := s.killPoints(kills, 140, 90)
	dbAt := int32(total / 2)
	t.Logf("kill a replica after %v successful posts; stop the database after %d", at, dbAt)
	var heldWhileDown atomic.Int64
	s.run(t, 4000, func() error {
		dbDone := false
		for i, n := range at {
			if !dbDone && n > dbAt {
				if err := s.waitPosts(dbAt); err != nil {
					return err
				}
				if err := pg.Stop(); err != nil {
					return err
				}
				time.Sleep(1500 * time.Millisecond)
				left, _ := s.ob.Len()
				heldWhileDown.Store(int64(left))
				if err := pg.Start(); err != nil {
					return err
				}
				dbDone = true
			}
			if err := s.waitPosts(n); err != nil {
				return err
			}
			if err := s.bounce(replicas[i%2]); err != nil {
				return err
			}
		}
		return nil
	})
	if got := s.killed.Load(); got < 5 {
		t.Fatalf("replicas killed %d times, want at least 5", got)
	}
	if heldWhileDown.Load() == 0 || unavailable.Load() == 0 {
		t.Errorf("while the database was down: %d snapshots in the outbox, %d answers 503; want some of both",
			heldWhileDown.Load(), unavailable.Load())
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, labels, keys int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT snapshot->'meters'->0->>'label'), count(DISTINCT idem_key)
		FROM usage_versions WHERE account = 'default'`).Scan(&rows, &labels, &keys); err != nil {
		t.Fatal(err)
	}
	if rows != total || labels != total || keys != total {
		t.Errorf("versions %d, distinct snapshots %d, distinct keys %d; want %d each", rows, labels, keys, total)
	}
	for i, rep := range replicas {
		waitFor(t, 20*time.Second, fmt.Sprintf("replica %d to count %d versions", i, total), func() bool {
			resp, err := http.Get(rep.url() + shared.PathHealth)
			if err != nil {
				return false
			}
			resp.Body.Close()
			_, h := rep.health(t)
			return h.VersionCount == total
		})
	}
	t.Logf("%d snapshots through 2 replicas, %d kills, the database down once (%d answers 503, %d snapshots waiting in the outbox), %d successful posts (replays included), %s",
		total, s.killed.Load(), unavailable.Load(), heldWhileDown.Load(), s.okPosts.Load(), time.Since(s.start).Round(time.Millisecond))
}

// count503 counts the 503 answers (STORAGE_UNAVAILABLE while the database
// is down) the scraper's client gets.
type count503 struct {
	n  *atomic.Int32
	rt http.RoundTripper
}

func (c count503) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusServiceUnavailable {
		c.n.Add(1)
	}
	return resp, err
}
