//go:build !js

package chaos_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/runner"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

// noScrape satisfies runner.Scraper for tests that only drain.
type noScrape struct{}

func (noScrape) Scrape(context.Context, string) (shared.Snapshot, error) {
	return shared.Snapshot{}, errors.New("chaos: this test only drains")
}

func drainer(t *testing.T, ob *outbox.Outbox, c *upload.Client, logs io.Writer) *runner.Runner {
	t.Helper()
	r, err := runner.New(runner.Config{Scraper: noScrape{}, Outbox: ob, Client: c, UsageURL: "http://127.0.0.1/",
		Interval: time.Minute, DrainBudget: time.Minute,
		Logger: slogJSON(logs)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestInvalidAPIKeyOneAttemptKeptInOutbox(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	var hits atomic.Int32
	front := countingProxy(t, srv.url(), &hits)
	logs := &testutil.LogBuffer{}
	rec := &sleepRecorder{}
	ob := openOutbox(t)
	if _, err := ob.Put(newSnapshot(1, time.Now())); err != nil {
		t.Fatal(err)
	}
	res := drainer(t, ob, newClient(front, "wrong-key-0123456789", logs, rec, 5*time.Second), logs).Drain(context.Background())

	if got, want := upload.CategoryOf(res.Err), shared.CategoryAuth; got != want {
		t.Fatalf("drain error category = %s, want %s (err %v)", got, want, res.Err)
	}
	if got, want := hits.Load(), int32(1); got != want {
		t.Errorf("requests at the server = %d, want %d (no retry for AUTH)", got, want)
	}
	if got := rec.all(); len(got) != 0 {
		t.Errorf("waits = %v, want none", got)
	}
	if n, _ := ob.Len(); n != 1 {
		t.Errorf("outbox holds %d snapshots, want 1 (kept for later)", n)
	}
	lines := attemptLines(t, logs.String())
	if got, want := len(lines), 1; got != want {
		t.Fatalf("sync attempt log lines = %d, want %d:\n%s", got, want, logs)
	}
	if got, want := lines[0]["category"], "AUTH"; got != want {
		t.Errorf("attempt log category = %v, want %v", got, want)
	}
	if got, want := lines[0]["retry"], false; got != want {
		t.Errorf("attempt log retry = %v, want %v", got, want)
	}
	if got, want := lines[0]["status"], float64(http.StatusUnauthorized); got != want {
		t.Errorf("attempt log status = %v, want %v", got, want)
	}
	if _, h := srv.health(t); h.VersionCount != 0 {
		t.Errorf("server versionCount = %d, want 0", h.VersionCount)
	}
}

func TestServer503RetriesWithGrowingWaitsThenKeeps(t *testing.T) {
	t.Parallel()
	var (
		mu    gosync.Mutex
		times []time.Time
	)
	fault := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(shared.ErrorBody{ErrorCode: "STORAGE_UNAVAILABLE", Message: "chaos: store breaker open"})
	}))
	t.Cleanup(fault.Close)
	logs := &testutil.LogBuffer{}
	rec := &sleepRecorder{}
	ob := openOutbox(t)
	if _, err := ob.Put(newSnapshot(1, time.Now())); err != nil {
		t.Fatal(err)
	}
	res := drainer(t, ob, newClient(fault.URL, apiKey, logs, rec, 5*time.Second), logs).Drain(context.Background())

	if got, want := upload.CategoryOf(res.Err), shared.CategoryServer; got != want {
		t.Fatalf("drain error category = %s, want %s (err %v)", got, want, res.Err)
	}
	mu.Lock()
	got := append([]time.Time(nil), times...)
	mu.Unlock()
	if len(got) != 1+upload.MaxRetries {
		t.Fatalf("requests = %d, want %d (1 attempt + 3 retries)", len(got), 1+upload.MaxRetries)
	}
	lines := attemptLines(t, logs.String())
	if len(lines) != 4 {
		t.Fatalf("sync attempt log lines = %d, want 4:\n%s", len(lines), logs)
	}
	var delays []float64
	for i, l := range lines {
		if got, want := l["attempt"], float64(i+1); got != want {
			t.Errorf("line %d attempt = %v, want %v", i, got, want)
		}
		if got, want := l["category"], "SERVER"; got != want {
			t.Errorf("line %d category = %v, want %v", i, got, want)
		}
		delays = append(delays, l["delayMs"].(float64))
	}
	// The last attempt gives up: no wait after it.
	if got, want := delays, []float64{10000, 20000, 40000, 0}; !slices.Equal(got, want) {
		t.Errorf("logged delayMs = %v, want %v", got, want)
	}
	// Measured at the fault server: each gap at least the (scaled) wait, in
	// growing order of the waits asked for.
	for i := 1; i < len(got); i++ {
		min := time.Duration(delays[i-1]) * time.Millisecond / backoffScale
		if gap := got[i].Sub(got[i-1]); gap < min {
			t.Errorf("gap before attempt %d = %s, want at least %s", i+1, gap, min)
		}
	}
	if n, _ := ob.Len(); n != 1 {
		t.Errorf("outbox holds %d snapshots, want 1", n)
	}
}

// stallProxy forwards TCP to target; the first stallConns connections get
// their request through but never see a response (a server that stored the
// write and then went silent).
type stallProxy struct {
	ln         net.Listener
	target     string
	stallConns int32
	conns      atomic.Int32
	wg         gosync.WaitGroup
	mu         gosync.Mutex
	open       []net.Conn
}

func startStallProxy(t *testing.T, target string, stall int32) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, stallConns: stall}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *stallProxy) track(c net.Conn) {
	p.mu.Lock()
	p.open = append(p.open, c)
	p.mu.Unlock()
}

func (p *stallProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		n := p.conns.Add(1)
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.track(c)
		p.track(up)
		stall := n <= p.stallConns
		p.wg.Add(2)
		// A stalled connection stays open without a byte of response until
		// the client gives up and closes it.
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(up, c)
			up.Close()
			if stall {
				c.Close()
			}
		}()
		go func() {
			defer p.wg.Done()
			if stall {
				_, _ = io.Copy(io.Discard, up)
				return
			}
			_, _ = io.Copy(c, up)
			c.Close()
		}()
	}
}

func (p *stallProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func TestNetworkTimeoutBackoffInOrderNoDuplicate(t *testing.T) {
	t.Parallel()
	srv := startServer(t, "")
	proxy := startStallProxy(t, srv.addr, 2)
	logs := &testutil.LogBuffer{}
	rec := &sleepRecorder{}
	ob := openOutbox(t)
	id, err := ob.Put(newSnapshot(7, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	// A short per-attempt timeout stands in for the 10 s one.
	const attemptTimeout = 2500 * time.Millisecond
	res := drainer(t, ob, newClient(proxy.url(), apiKey, logs, rec, attemptTimeout), logs).Drain(context.Background())
	if res.Err != nil || res.Sent != 1 {
		t.Fatalf("drain = %+v, want 1 sent after the stalls:\n%s", res, logs)
	}
	if got, want := rec.all(), []time.Duration{10 * time.Second, 20 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("waits = %v, want %v", got, want)
	}
	lines := attemptLines(t, logs.String())
	if len(lines) != 3 {
		t.Fatalf("sync attempt log lines = %d, want 3:\n%s", len(lines), logs)
	}
	for i, want := range []string{"NETWORK", "NETWORK", "OK"} {
		if got := lines[i]["category"]; got != want {
			t.Errorf("attempt %d category = %v, want %v", i+1, got, want)
		}
	}
	// The stalled attempts ended by the client's timeout, not by a reset.
	for i := range 2 {
		if d := lines[i]["durationMs"].(float64); d < float64(attemptTimeout.Milliseconds())-50 {
			t.Errorf("stalled attempt %d lasted %v ms, want about the %s timeout", i+1, d, attemptTimeout)
		}
	}
	if got, want := proxy.conns.Load(), int32(3); got != want {
		t.Errorf("connections through the proxy = %d, want %d", got, want)
	}
	if n, _ := ob.Len(); n != 0 {
		t.Errorf("outbox holds %d, want 0", n)
	}
	// The stalled attempts reached the server; the idempotency key keeps
	// the replay from becoming a second version.
	files := versionFiles(t, srv.dataDir, shared.DefaultAccount)
	if len(files) != 1 {
		t.Fatalf("version files = %d, want exactly 1", len(files))
	}
	if got, want := files[0].IdempotencyKey, id; got != want {
		t.Errorf("stored idempotency key = %q, want the outbox id %q", got, want)
	}
	if _, h := srv.health(t); h.VersionCount != 1 {
		t.Errorf("health versionCount = %d, want 1", h.VersionCount)
	}
}
