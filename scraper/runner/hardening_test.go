package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

// upstream is a fake server on 127.0.0.1 whose answer to snapshot POSTs
// the test switches: a captive portal, a proxy's page, or the usage-server
// (then scraper statuses are taken too).
type upstream struct {
	srv *httptest.Server

	mu       sync.Mutex
	answer   func(w http.ResponseWriter, n int)
	keys     []string
	statuses []shared.ScraperStatus
}

func newUpstream(t *testing.T, answer func(w http.ResponseWriter, n int)) *upstream {
	t.Helper()
	u := &upstream{answer: answer}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		answer := u.answer
		var n int
		if r.URL.Path == shared.PathUsage {
			u.keys = append(u.keys, r.Header.Get(shared.HeaderIdempotencyKey))
			n = len(u.keys)
		} else if r.URL.Path == shared.PathScraperStatus {
			var st shared.ScraperStatus
			_ = json.Unmarshal(body, &st)
			u.statuses = append(u.statuses, st)
		}
		u.mu.Unlock()
		if r.URL.Path == shared.PathScraperStatus && answer == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if answer == nil {
			answer = usageServerAnswer
		}
		answer(w, n)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) set(answer func(w http.ResponseWriter, n int)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.answer = answer
}

func (u *upstream) seen() ([]string, []shared.ScraperStatus) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string{}, u.keys...), append([]shared.ScraperStatus{}, u.statuses...)
}

// usageServerAnswer is the usage-server's 201.
func usageServerAnswer(w http.ResponseWriter, n int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"success":true,"version":%d,"id":"v%d","storedAt":"2026-11-28T13:50:01Z","requestId":"r%d"}`, n, n, n)
}

func html(status int, page string) func(w http.ResponseWriter, n int) {
	return func(w http.ResponseWriter, _ int) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, page)
	}
}

// A captive portal (or a wrong --server) answering 200 with HTML is not a
// delivery: nothing is logged as synced, the snapshot stays pending, and
// logs and `usage-scraper status` say the URL does not answer like a
// usage-server. Once the real server answers, it is sent.
func TestCaptivePortalIsNotDelivered(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, html(http.StatusOK, "<html><title>Hotel WiFi</title>Accept the terms</html>"))
	synctest.Test(t, func(t *testing.T) {
		rg := newRig(t, up.srv.URL, nil, nil)
		res := rg.r.Cycle(context.Background())
		if res.Drain.Sent != 0 || !reflect.DeepEqual(rg.pending(t), []string{res.ID}) {
			t.Fatalf("drain = %+v, pending %v; want nothing delivered and %s kept", res.Drain, rg.pending(t), res.ID)
		}
		if n := len(testutil.LogRecords(t, rg.logs.String(), "snapshot synced")); n != 0 {
			t.Errorf("a portal page was logged as synced %d time(s)", n)
		}
		stops := testutil.LogRecords(t, rg.logs.String(), "drain stopped")
		if len(stops) != 1 || !strings.Contains(fmt.Sprint(stops[0]["nextStep"]), "does not answer like a usage-server") {
			t.Errorf("drain stop logs = %v, want one saying the URL is not a usage-server", stops)
		}
		if st := rg.client.Tracker.State(); st.NotUsageServer == nil || !strings.Contains(st.NotUsageServer.Message, "HTTP 200 (text/html)") {
			t.Errorf("state.NotUsageServer = %+v, want the portal's answer", st.NotUsageServer)
		}
		up.set(nil)
		res2 := rg.r.Cycle(context.Background())
		if res2.Drain.Sent != 2 || len(rg.pending(t)) != 0 {
			t.Errorf("after the real server answers: drain = %+v, pending %v", res2.Drain, rg.pending(t))
		}
		if st := rg.client.Tracker.State(); st.NotUsageServer != nil {
			t.Errorf("state.NotUsageServer = %+v after a delivery, want nil", st.NotUsageServer)
		}
	})
}

// A proxy's 405 or 413 HTML page is not the server's verdict: no snapshot
// moves to rejected/ (where they would be pruned at 1 000: lost), all stay
// pending, and the logs say the URL does not answer like a usage-server.
func TestForeign4xxKeepsSnapshotsPending(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			up := newUpstream(t, html(status, fmt.Sprintf("<html><center><h1>%d %s</h1></center><hr>nginx</html>", status, http.StatusText(status))))
			synctest.Test(t, func(t *testing.T) {
				rg := newRig(t, up.srv.URL, nil, nil)
				ids := rg.put(t, 3)
				res := rg.r.Drain(context.Background())
				if got := rg.pending(t); !reflect.DeepEqual(got, ids) {
					t.Errorf("pending = %v, want all of %v", got, ids)
				}
				if m, _ := filepath.Glob(filepath.Join(rg.ob.Dir(), outbox.RejectedDir, "*")); len(m) != 0 || res.Rejected != 0 {
					t.Errorf("rejected/ = %v (Rejected %d), want empty", m, res.Rejected)
				}
				if got := upload.CategoryOf(res.Err); got != shared.CategoryServer {
					t.Errorf("drain error = %q (%v), want SERVER", got, res.Err)
				}
				if !strings.Contains(rg.logs.String(), "does not answer like a usage-server") {
					t.Errorf("the logs do not say the URL is not a usage-server:\n%s", rg.logs)
				}
				// The URL is wrong for every snapshot alike: one is tried,
				// with its retries, and the drain stops.
				if keys, _ := up.seen(); len(keys) != 4 {
					t.Errorf("POSTs = %d, want 4 (one snapshot, 1 attempt + 3 retries)", len(keys))
				}
			})
		})
	}
}

// No head-of-line blocking across cycles: the snapshot the server keeps
// failing waits behind the others on its own backoff (not tried while it
// runs), newer snapshots reach the server every cycle, and the failing one
// is sent after the fresh ones once its backoff has passed.
func TestHeadOfLineSnapshotWaitsBehind(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	poison := ""
	fs := newFakeServer(t, func(_ int, key string, _ shared.Snapshot) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if key == poison {
			return 500, ""
		}
		return 201, ""
	})
	synctest.Test(t, func(t *testing.T) {
		rg := newRig(t, fs.srv.URL, nil, nil)
		p := rg.put(t, 1)[0]
		mu.Lock()
		poison = p
		mu.Unlock()
		count := func(keys []string, k string) int {
			n := 0
			for _, x := range keys {
				if x == k {
					n++
				}
			}
			return n
		}
		// Cycle 1: the poison snapshot fails its 4 attempts, the new one is sent.
		c1 := rg.r.Cycle(context.Background())
		if c1.Drain.Sent != 1 || c1.Drain.Deferred != 1 || c1.Drain.Err != nil || !c1.Reported {
			t.Fatalf("cycle 1 = %+v", c1)
		}
		// Cycle 2, at once: the poison one is still waiting; the new one goes.
		c2 := rg.r.Cycle(context.Background())
		keys, _, _ := fs.seen()
		if c2.Drain.Sent != 1 || c2.Drain.Deferred != 1 || count(keys, p) != 4 {
			t.Fatalf("cycle 2 = %+v; POSTs of the deferred one = %d, want still 4", c2.Drain, count(keys, p))
		}
		// After its backoff (one interval) and with the server healed, the
		// fresh snapshot goes first, then the deferred one.
		time.Sleep(DefaultInterval)
		mu.Lock()
		poison = ""
		mu.Unlock()
		c3 := rg.r.Cycle(context.Background())
		keys, _, _ = fs.seen()
		if c3.Drain.Sent != 2 || c3.Drain.Remaining != 0 {
			t.Fatalf("cycle 3 = %+v", c3.Drain)
		}
		if got, want := keys[len(keys)-2:], []string{c3.ID, p}; !reflect.DeepEqual(got, want) {
			t.Errorf("last POSTs = %v, want the fresh %s before the deferred %s", got, c3.ID, p)
		}
		if logs := testutil.LogRecords(t, rg.logs.String(), "snapshot deferred: its retries are spent, the others go first"); len(logs) != 1 || logs[0]["id"] != p {
			t.Errorf("deferral logs = %v, want one for %s", logs, p)
		}
	})
}

// A laptop disk full while the server is down: every scrape is held in
// memory (real ENOSPC from a size-limited tmpfs), written to the outbox
// before the next send once the disk has room, and delivered under its
// first id when the server is back: nothing lost, nothing doubled.
func TestDiskFullWhileServerDownLosesNothing(t *testing.T) {
	t.Parallel()
	mnt, filler := testutil.FullDisk(t, "256k")
	dir := filepath.Join(mnt, "outbox")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	down := "http://" + testutil.FreeAddr(t)
	fs := newFakeServer(t, nil)
	synctest.Test(t, func(t *testing.T) {
		rg := newRig(t, down, nil, nil)
		log := slog.New(slog.NewJSONHandler(rg.logs, nil))
		ob, err := outbox.Open(dir, outbox.Options{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		rg.ob, rg.r.cfg.Outbox = ob, ob
		var ids []string
		for range 3 {
			res := rg.r.Cycle(context.Background())
			if res.ID == "" || upload.CategoryOf(res.Drain.Err) != shared.CategoryNetwork {
				t.Fatalf("cycle on a full disk with the server down = %+v", res)
			}
			ids = append(ids, res.ID)
		}
		if got := rg.pending(t); !reflect.DeepEqual(got, ids) || ob.Held() != 3 {
			t.Fatalf("pending = %v (held %d), want %v in memory", got, ob.Held(), ids)
		}
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		res := rg.r.Cycle(context.Background()) // still down: the drain's flush writes them
		ids = append(ids, res.ID)
		if ob.Held() != 0 {
			t.Errorf("held after the disk has room = %d, want 0", ob.Held())
		}
		for _, id := range ids {
			if m, _ := filepath.Glob(filepath.Join(dir, "*-"+id+".json")); len(m) != 1 {
				t.Errorf("snapshot %s not on disk after the flush", id)
			}
		}
		rg.client.ServerURL = fs.srv.URL
		res = rg.r.Cycle(context.Background())
		keys, _, _ := fs.seen()
		if want := append(append([]string{}, ids...), res.ID); !reflect.DeepEqual(keys, want) {
			t.Errorf("POSTs = %v, want each snapshot once under its first id %v", keys, want)
		}
		if n := len(testutil.LogRecords(t, rg.logs.String(), "snapshots dropped: neither stored nor sent")); n != 0 {
			t.Errorf("%d drops logged, want none", n)
		}
	})
}

// Beyond the memory bound (1 000 held) the oldest are dropped, and that is
// never silent: an error-level log, a record for `usage-scraper status`,
// and a scraper status the widget shows once the server can be reached.
func TestDroppedSnapshotsAreReported(t *testing.T) {
	t.Parallel()
	mnt, _ := testutil.FullDisk(t, "256k")
	down := "http://" + testutil.FreeAddr(t)
	fs := newFakeServer(t, nil)
	synctest.Test(t, func(t *testing.T) {
		rg := newRig(t, down, nil, nil)
		ob, err := outbox.Open(mnt, outbox.Options{Logger: slog.New(slog.NewJSONHandler(rg.logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		rg.ob, rg.r.cfg.Outbox = ob, ob
		for range outbox.DefaultMaxHeld + 1 {
			rg.r.Cycle(context.Background())
		}
		if got, want := ob.Held(), outbox.DefaultMaxHeld; got != want {
			t.Fatalf("held = %d, want the bound %d", got, want)
		}
		drops := testutil.LogRecords(t, rg.logs.String(), "snapshots dropped: neither stored nor sent")
		if len(drops) != 1 || drops[0]["level"] != "ERROR" || drops[0]["dropped"] != 1.0 {
			t.Errorf("drop logs = %v, want one at ERROR for 1 snapshot", drops)
		}
		if st := rg.client.Tracker.State(); st.Dropped == nil || !strings.Contains(st.Dropped.Message, "1 snapshot(s) dropped") {
			t.Errorf("state.Dropped = %+v", st.Dropped)
		}
		rg.client.ServerURL = fs.srv.URL
		res := rg.r.Cycle(context.Background())
		_, _, statuses := fs.seen()
		if len(statuses) != 1 || statuses[0].OK || statuses[0].Category != upload.CategoryDropped ||
			!strings.Contains(statuses[0].Message, "2 snapshot(s) dropped") {
			t.Errorf("statuses = %+v, want one %s status naming the 2 drops", statuses, upload.CategoryDropped)
		}
		if res.Drain.Sent != outbox.DefaultMaxHeld {
			t.Errorf("sent %d of the held snapshots, want all %d", res.Drain.Sent, outbox.DefaultMaxHeld)
		}
		// Reported once: the next cycle reports the scrape again.
		rg.r.Cycle(context.Background())
		if _, _, statuses = fs.seen(); len(statuses) != 2 || !statuses[1].OK {
			t.Errorf("statuses = %+v, want the scrape's OK after the drop report", statuses)
		}
	})
}
