package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/store/pgstore"
	"github.com/claude-usage/widget/shared"
)

// The PostgreSQL cluster of the server tests starts with the first test
// that needs it and stops when the tests end (runTests).
var (
	pgOnce    sync.Once
	pgCluster *testutil.Postgres
	pgErr     error
)

func serverPG(t *testing.T) *testutil.Postgres {
	t.Helper()
	pgOnce.Do(func() { pgCluster, pgErr = testutil.StartPostgres() })
	if pgErr != nil {
		t.Fatal(pgErr)
	}
	return pgCluster
}

func stopServerPG() {
	if pgCluster != nil {
		pgCluster.Close()
	}
}

// The cluster trusts loopback connections, so any password is accepted:
// it is there to show that none reaches a log or an answer.
const pgPassword = "hunter2-not-logged"

func pgDSN(t *testing.T) string {
	pg := serverPG(t)
	return strings.Replace(pg.DSN(pg.NewDatabase(t)), "postgres@", "postgres:"+pgPassword+"@", 1)
}

func TestStoreFlag(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
		err  bool
	}{
		{"default is the file store", nil, nil, "file", false},
		{"a connection string", []string{"--store", "postgres://u:p@db:5432/usage"}, nil, "postgres://u:p@db:5432/usage", false},
		{"from the environment", nil, map[string]string{"USAGE_STORE": "postgresql://db/usage"}, "postgresql://db/usage", false},
		{"anything else is refused", []string{"--store", "mysql://u:" + pgPassword + "@db/usage"}, nil, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"USAGE_API_KEY": testKey, "USAGE_READ_TOKEN": testToken}
			for k, v := range tc.env {
				env[k] = v
			}
			o, err := ParseOptions(tc.args, func(k string) string { return env[k] }, &bytes.Buffer{})
			if tc.err {
				if err == nil || strings.Contains(err.Error(), pgPassword) {
					t.Errorf("err = %v, want a refusal that does not repeat the value", err)
				}
				return
			}
			if err != nil || o.Store != tc.want {
				t.Errorf("Store = %q, %v; want %q", o.Store, err, tc.want)
			}
		})
	}
}

// TestPostgresThroughTheAPI runs the API on the PostgreSQL store: POST,
// replay, GET latest, and health naming the database.
func TestPostgresThroughTheAPI(t *testing.T) {
	t.Parallel()
	dsn := pgDSN(t)
	e := newEnv(t, wrapStore(func(store.Store) store.Store {
		st, err := pgstore.Open(context.Background(), pgstore.Options{DSN: dsn, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}))
	body := snap("default", t0.Add(-time.Minute), 42)
	r := e.post(body, shared.HeaderIdempotencyKey, "pg-api-1")
	if r.status != http.StatusCreated {
		t.Fatalf("POST = %d %s", r.status, r.body)
	}
	var pr shared.PostResult
	r.decode(t, &pr)
	r = e.post(body, shared.HeaderIdempotencyKey, "pg-api-1")
	var again shared.PostResult
	r.decode(t, &again)
	if r.status != http.StatusOK || r.header.Get("Idempotent-Replayed") != "true" || again.ID != pr.ID {
		t.Errorf("replay = %d %s, want 200 with the original id", r.status, r.body)
	}
	if r := e.post(snap("default", t0, 43), shared.HeaderIdempotencyKey, "pg-api-1"); r.status != http.StatusUnprocessableEntity ||
		r.errBody(t).ErrorCode != shared.CodeIdempotencyKeyReused {
		t.Errorf("other body, same key = %d %s", r.status, r.body)
	}
	r = e.get(shared.PathUsage)
	var u shared.UsageResponse
	r.decode(t, &u)
	if r.status != http.StatusOK || u.VersionInfo.ID != pr.ID || u.VersionInfo.Total != 1 {
		t.Fatalf("GET = %d %s", r.status, r.body)
	}
	r = e.get(shared.PathHealth)
	var h shared.HealthResponse
	r.decode(t, &h)
	db := h.Storage.Database
	if db == nil || !db.Reachable || !db.MigrationsCurrent || db.SchemaVersion != pgstore.SchemaVersion() || !h.Storage.Writable {
		t.Errorf("health storage = %s", r.body)
	}
	if bytes.Contains(r.body, []byte(pgPassword)) || h.Storage.FreeBytes != nil {
		t.Errorf("health shows the password or a free-bytes figure: %s", r.body)
	}
}

// TestTwoReplicaProcesses runs two usage-server processes on one
// database: a POST through one is read through the other, a retry through
// the other replays, and neither logs the password.
func TestTwoReplicaProcesses(t *testing.T) {
	t.Parallel()
	dsn := pgDSN(t)
	args := []string{"--addr", "127.0.0.1:0", "--store", dsn, "--api-key", testKey, "--read-token", testToken, "--web-dir", t.TempDir(),
		"--data-dir", t.TempDir()}
	a, b := startServer(t, args...), startServer(t, args...)
	scraped := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	post := func(p *proc) (int, shared.PostResult) {
		r := send(t, http.MethodPost, "http://"+p.addr+shared.PathUsage, snap("default", scraped, 42),
			"Content-Type", "application/json", shared.HeaderAPIKey, testKey, shared.HeaderIdempotencyKey, "two-replicas")
		var pr shared.PostResult
		r.decode(t, &pr)
		return r.status, pr
	}
	st, first := post(a)
	if st != http.StatusCreated {
		t.Fatalf("POST via A = %d", st)
	}
	st, second := post(b)
	if st != http.StatusOK || second.ID != first.ID {
		t.Errorf("retry via B = %d %s, want 200 with %s", st, second.ID, first.ID)
	}
	r := send(t, http.MethodGet, "http://"+b.addr+shared.PathUsage, "", "Authorization", "Bearer "+testToken)
	var u shared.UsageResponse
	r.decode(t, &u)
	if r.status != http.StatusOK || u.VersionInfo.ID != first.ID || u.VersionInfo.Total != 1 {
		t.Errorf("GET via B = %d %s", r.status, r.body)
	}

	// A stream open on B sees a POST made through A within a second.
	stream, _ := openStream(t, "http://"+b.addr)
	if stream == nil {
		t.Fatal("stream on B refused")
	}
	stream.nextEvent(t, 5*time.Second) // the event at connect
	posted := time.Now()
	r = send(t, http.MethodPost, "http://"+a.addr+shared.PathUsage, snap("default", scraped.Add(time.Second), 43),
		"Content-Type", "application/json", shared.HeaderAPIKey, testKey)
	if r.status != http.StatusCreated {
		t.Fatalf("second POST via A = %d %s", r.status, r.body)
	}
	var ev shared.UsageResponse
	if err := json.Unmarshal([]byte(stream.nextEvent(t, time.Second)), &ev); err != nil || ev.Meters[0].PercentUsed != 43 || ev.VersionInfo.Total != 2 {
		t.Fatalf("event on B after a POST via A: %+v %v", ev.VersionInfo, err)
	}
	t.Logf("a POST via replica A reached a stream on replica B in %s", time.Since(posted).Round(time.Millisecond))

	for name, p := range map[string]*proc{"A": a, "B": b} {
		if err := p.stop(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if strings.Contains(p.Log.String(), pgPassword) {
			t.Errorf("%s logged the password:\n%s", name, p.Log)
		}
		if !strings.Contains(p.Log.String(), fmt.Sprintf(`"store":"%s"`, pgstore.Redact(dsn))) {
			t.Errorf("%s: the listening line does not name the database:\n%s", name, p.Log)
		}
	}
}

// TestTwoReplicasAlertOnce: both replicas hear of a snapshot that crosses
// a threshold (one stored it, the other through LISTEN) and both evaluate
// it; the claim in the database lets one of them send it.
func TestTwoReplicasAlertOnce(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var accepted []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		accepted = append(accepted, r.Header.Get(shared.HeaderIdempotencyKey))
		mu.Unlock()
	}))
	defer hook.Close()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}
	dsn := pgDSN(t)
	args := []string{"--addr", "127.0.0.1:0", "--store", dsn, "--api-key", testKey, "--read-token", testToken,
		"--web-dir", t.TempDir(), "--data-dir", t.TempDir(), "--alert-webhook", hook.URL, "--alert-kinds", "threshold"}
	a, b := startServer(t, args...), startServer(t, args...)
	r := send(t, http.MethodPost, "http://"+a.addr+shared.PathUsage, snap("default", time.Now().UTC().Add(-time.Minute).Truncate(time.Second), 91),
		"Content-Type", "application/json", shared.HeaderAPIKey, testKey)
	if r.status != http.StatusCreated {
		t.Fatalf("POST = %d %s", r.status, r.body)
	}
	drained := func(p *proc) bool {
		res, err := http.Get("http://" + p.addr + shared.PathMetrics)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return strings.Contains(string(body), `usage_alert_queue_length{channel="webhook"} 0`)
	}
	deadline := time.Now().Add(15 * time.Second)
	for count() < 1 || !drained(a) || !drained(b) {
		if time.Now().After(deadline) {
			mu.Lock()
			keys := append([]string(nil), accepted...)
			mu.Unlock()
			t.Fatalf("no alert delivered and drained in 15 s (got %d: %q)\nA:\n%s\nB:\n%s", count(), keys, a.Log, b.Log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The other replica's evaluation follows its NOTIFY within
	// milliseconds; a duplicate would be queued and sent by now.
	time.Sleep(time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(accepted) != 1 || len(accepted[0]) != 64 {
		t.Errorf("the webhook accepted %q from two replicas, want exactly one alert id", accepted)
	}
}
