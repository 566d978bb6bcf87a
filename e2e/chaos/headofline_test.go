//go:build !js

package chaos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/xid"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/scraper/runner"
	"github.com/claude-usage/widget/shared"
)

// poisonProxy forwards to the real server, except that every POST of the
// snapshot whose Idempotency-Key is poisoned gets a 500 with the server's
// own error body: one snapshot the server keeps failing, as a bug in one
// record would make it.
func poisonProxy(t *testing.T, target string, poisoned *atomic.Value, hits *atomic.Int32) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{DisableKeepAlives: true}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(shared.HeaderIdempotencyKey)
		if p, _ := poisoned.Load().(string); r.Method == http.MethodPost && key != "" && key == p {
			hits.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			id := xid.New().String()
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set(shared.HeaderRequestID, id)
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(shared.ErrorBody{ErrorCode: shared.CodeInternal, Message: "internal error",
				Suggestion: "Try again later.", RequestID: id, Timestamp: time.Now().UTC(), Category: shared.CategoryServer})
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// One snapshot the server keeps failing does not hold back the others: the
// newer ones reach the server (and the widget) in the same drain, the bad
// one waits behind them on its own backoff and is delivered, once, when
// the server takes it again.
func TestHeadOfLineSnapshotDoesNotBlockTheOthers(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	var poisoned atomic.Value
	var poisonHits atomic.Int32
	front := poisonProxy(t, srv.url(), &poisoned, &poisonHits)
	logs := &testutil.LogBuffer{}
	rec := &sleepRecorder{}
	ob := openOutbox(t)
	now := time.Now()
	var ids []string
	for i := range 4 {
		id, err := ob.Put(newSnapshot(i, now.Add(time.Duration(i-10)*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	poisoned.Store(ids[0]) // the oldest: first in line
	r, err := runner.New(runner.Config{Scraper: noScrape{}, Outbox: ob, Client: newClient(front, apiKey, logs, rec, 5*time.Second),
		UsageURL: "http://127.0.0.1/", Interval: time.Second, Jitter: -1, DrainBudget: time.Minute,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}

	res := r.Drain(context.Background())
	if res.Sent != 3 || res.Deferred != 1 || res.Remaining != 1 {
		t.Fatalf("drain with one failing snapshot = %+v, want 3 sent, 1 deferred, 1 remaining\n%s", res, logs)
	}
	if got, want := poisonHits.Load(), int32(4); got != want {
		t.Errorf("attempts for the failing snapshot = %d, want %d (1 + 3 retries)", got, want)
	}
	code, latest := srv.latest(t)
	if code != http.StatusOK {
		t.Fatalf("GET latest = %d", code)
	}
	if got, want := latest["meters"].([]any)[0].(map[string]any)["label"], "n-3"; got != want {
		t.Errorf("latest label = %v, want %v: the newest snapshot must reach the server past the failing one", got, want)
	}
	if !logs.Contains("snapshot deferred") {
		t.Errorf("no deferral logged:\n%s", logs)
	}

	// The server takes it again: after its own backoff it is delivered.
	poisoned.Store("")
	deadline := time.Now().Add(15 * time.Second)
	for {
		res = r.Drain(context.Background())
		if res.Remaining == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deferred snapshot was not delivered: %+v\n%s", res, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	files := versionFiles(t, srv.dataDir, shared.DefaultAccount)
	if got, want := len(files), 4; got != want {
		t.Fatalf("versions = %d, want %d (each snapshot once)", got, want)
	}
	seen := map[string]int{}
	for _, f := range files {
		seen[f.Snapshot.Meters[0].Label]++
	}
	for i := range 4 {
		if label := fmt.Sprintf("n-%d", i); seen[label] != 1 {
			t.Errorf("snapshot %s stored %d times, want once", label, seen[label])
		}
	}
	code, latest = srv.latest(t)
	if got, want := latest["meters"].([]any)[0].(map[string]any)["label"], "n-3"; code != http.StatusOK || got != want {
		t.Errorf("after the late delivery latest = %d %v, want n-3: a late snapshot never hides a newer one", code, got)
	}
}
