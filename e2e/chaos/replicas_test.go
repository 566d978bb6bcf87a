//go:build !js

package chaos_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
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

	var okPosts atomic.Int32
	logs := &testutil.LogBuffer{}
	c := newClient(front.URL, apiKey, logs, &sleepRecorder{}, 3*time.Second)
	var unavailable atomic.Int32
	c.HTTPClient = &http.Client{Transport: countOK{&okPosts, count503{&unavailable, &http.Transport{DisableKeepAlives: true}}}}
	ob := openOutbox(t)
	base := time.Now().Add(-2 * time.Hour).UTC()
	for i := range total {
		if _, err := ob.Put(newSnapshot(i, base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	var at []int32
	for i := range kills {
		at = append(at, int32(50+i*140)+rng.Int32N(90))
	}
	dbAt := int32(total / 2)
	t.Logf("kill a replica after %v successful posts; stop the database after %d", at, dbAt)
	stop := make(chan struct{})
	chaosDone := make(chan error, 1)
	var killed atomic.Int32
	var heldWhileDown atomic.Int64
	waitPosts := func(n int32, deadline time.Time) error {
		for okPosts.Load() < n {
			select {
			case <-stop:
				return errStopped
			case <-time.After(2 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("posts stuck at %d before %d", okPosts.Load(), n)
			}
		}
		return nil
	}
	go func() {
		chaosDone <- func() error {
			deadline := time.Now().Add(200 * time.Second)
			dbDone := false
			for i, n := range at {
				if !dbDone && n > dbAt {
					if err := waitPosts(dbAt, deadline); err != nil {
						return ignoreStopped(err)
					}
					if err := pg.Stop(); err != nil {
						return err
					}
					time.Sleep(1500 * time.Millisecond)
					left, _ := ob.Len()
					heldWhileDown.Store(int64(left))
					if err := pg.Start(); err != nil {
						return err
					}
					dbDone = true
				}
				if err := waitPosts(n, deadline); err != nil {
					return ignoreStopped(err)
				}
				r := replicas[i%2]
				r.kill()
				killed.Add(1)
				time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
				if err := r.start(); err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
	})

	r := drainer(t, ob, c, logs)
	start := time.Now()
	for round := 0; ; round++ {
		if round > 4000 || time.Since(start) > 200*time.Second {
			t.Fatalf("outbox not drained after %d rounds, %s", round, time.Since(start))
		}
		res := r.Drain(context.Background())
		if res.Err == nil && res.Remaining == 0 {
			break
		}
		if res.Err != nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	close(stop)
	if err := <-chaosDone; err != nil {
		t.Fatal(err)
	}
	if got := killed.Load(); got < 5 {
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
		total, killed.Load(), unavailable.Load(), heldWhileDown.Load(), okPosts.Load(), time.Since(start).Round(time.Millisecond))
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

var errStopped = fmt.Errorf("stopped")

func ignoreStopped(err error) error {
	if err == errStopped {
		return nil
	}
	return err
}
