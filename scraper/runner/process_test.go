package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testbin"
	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

// The child process: the test binary re-executed with childEnv set runs a
// runner with a scripted scraper, so the parent can SIGKILL a real process
// in the middle of a sync.
const (
	childEnv       = "USAGE_RUNNER_TEST_CHILD"
	childServer    = "USAGE_RUNNER_TEST_SERVER"
	childOutbox    = "USAGE_RUNNER_TEST_OUTBOX"
	childBase      = "USAGE_RUNNER_TEST_BASE"  // RFC 3339 time of snapshot 0
	childFirst     = "USAGE_RUNNER_TEST_FIRST" // number of the first snapshot to scrape
	childCount     = "USAGE_RUNNER_TEST_COUNT" // how many to scrape
	readToken      = "runner-test-read-token-0123456789"
	processAccount = "work"
)

// childMain scrapes snapshots first..first+count-1, one per cycle, then
// drains until the outbox is empty. It exits 0 when everything was sent.
func childMain() int {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	base, err := time.Parse(time.RFC3339Nano, os.Getenv(childBase))
	first, err1 := strconv.Atoi(os.Getenv(childFirst))
	count, err2 := strconv.Atoi(os.Getenv(childCount))
	if err != nil || err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "child: bad environment")
		return 2
	}
	ob, err := outbox.Open(os.Getenv(childOutbox), outbox.Options{Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	client := &upload.Client{ServerURL: os.Getenv(childServer), APIKey: testKey, Logger: log,
		AttemptTimeout: time.Minute} // the parent kills us long before
	sc := &numbered{base: base, next: first}
	r, err := New(Config{Scraper: sc, Outbox: ob, Client: client, UsageURL: "https://claude.ai/settings/usage",
		Account: processAccount, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	ctx := context.Background()
	for range count {
		r.Cycle(ctx)
	}
	for range 10 {
		if n, _ := ob.Len(); n == 0 {
			return 0
		}
		r.Drain(ctx)
	}
	fmt.Fprintln(os.Stderr, "child: outbox not empty")
	return 1
}

// numbered scrapes snapshot k at base + k minutes with k percent used.
type numbered struct {
	base time.Time
	next int
}

func (s *numbered) Scrape(context.Context, string) (shared.Snapshot, error) {
	k := s.next
	s.next++
	return shared.Snapshot{ScrapedAt: s.base.Add(time.Duration(k) * time.Minute), Source: "claude.ai/settings/usage",
		Capture: shared.CaptureAPI, Meters: []shared.Meter{{ID: shared.MeterSession, Label: "Current session", PercentUsed: float64(k)}}}, nil
}

var (
	serverBinOnce sync.Once
	serverBin     string
	serverBinErr  error
)

// usageServer returns the real usage-server binary: the Makefile's build in
// $USAGE_BIN_DIR, or one built once for this test binary.
func usageServer(t *testing.T) string {
	t.Helper()
	serverBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "runner-test-bin-")
		if err != nil {
			serverBinErr = err
			return
		}
		serverBin, serverBinErr = testbin.Locate(dir, "usage-server")
	})
	if serverBinErr != nil {
		t.Fatal(serverBinErr)
	}
	return serverBin
}

// procTransport is used for every request the process tests make
// themselves, so that its idle connections can be closed for goleak.
var procTransport = &http.Transport{}
var procClient = &http.Client{Transport: procTransport}

// startUsageServer starts the real server on addr and waits until it
// listens. The test's cleanup stops it.
func startUsageServer(t *testing.T, addr, dataDir string) {
	t.Helper()
	p := testutil.StartProcess(t, usageServer(t), []string{"--addr", addr, "--data-dir", dataDir, "--api-key", testKey,
		"--read-token", readToken, "--web-dir", t.TempDir(), "--rate-limit", "0"},
		testutil.ProcessOptions{Env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}})
	if err := p.WaitLine("listening on ", 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// versionTotal asks the real server how many versions the account has.
func versionTotal(t *testing.T, base string) (int, shared.UsageResponse) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+shared.PathUsage+"?version=-1&account="+processAccount, nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := procClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET latest = %d %s", resp.StatusCode, body)
	}
	var u shared.UsageResponse
	if err := json.Unmarshal(body, &u); err != nil {
		t.Fatal(err)
	}
	return u.VersionInfo.Total, u
}

// percents lists the session percentage of versions 1..n, oldest first.
func percents(t *testing.T, base string, n int) []float64 {
	t.Helper()
	var out []float64
	for v := 1; v <= n; v++ {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s%s?version=%d&account=%s", base, shared.PathUsage, v, processAccount), nil)
		req.Header.Set("Authorization", "Bearer "+readToken)
		resp, err := procClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var u shared.UsageResponse
		err = json.NewDecoder(resp.Body).Decode(&u)
		resp.Body.Close()
		if err != nil || len(u.Meters) == 0 {
			t.Fatalf("version %d: %v", v, err)
		}
		out = append(out, u.Meters[0].PercentUsed)
	}
	return out
}

// N snapshots scraped while the server is down all arrive once it is up:
// exactly N versions, in scrape order.
func TestNothingLostWhileServerDown(t *testing.T) {
	t.Parallel()
	addr := testutil.FreeAddr(t)
	base := "http://" + addr
	t.Cleanup(procTransport.CloseIdleConnections)
	const n = 5
	// On real time (a real server process is outside any synctest
	// bubble): the waits between attempts are skipped through the
	// client's hook.
	rg := newRig(t, base, nil, nil)
	rg.client.Sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	for range n {
		res := rg.r.Cycle(context.Background())
		if res.ID == "" || upload.CategoryOf(res.Drain.Err) != shared.CategoryNetwork {
			t.Fatalf("cycle while down = %+v", res)
		}
	}
	if got := len(rg.pending(t)); got != n {
		t.Fatalf("outbox holds %d, want %d", got, n)
	}
	startUsageServer(t, addr, t.TempDir())
	res := rg.r.Drain(context.Background())
	if res.Err != nil || res.Sent != n || res.Remaining != 0 {
		t.Fatalf("drain after the server came up = %+v", res)
	}
	total, latest := versionTotal(t, base)
	if total != n {
		t.Errorf("server holds %d versions, want exactly %d", total, n)
	}
	if got, want := percents(t, base, n), []float64{1, 2, 3, 4, 5}; !reflect.DeepEqual(got, want) {
		t.Errorf("versions = %v, want %v in scrape order", got, want)
	}
	if latest.Account != processAccount {
		t.Errorf("account = %q", latest.Account)
	}
	// A second drain has nothing to send and changes nothing.
	if res := rg.r.Drain(context.Background()); res.Sent != 0 {
		t.Errorf("second drain sent %d", res.Sent)
	}
	if total, _ := versionTotal(t, base); total != n {
		t.Errorf("after a second drain: %d versions", total)
	}
}

// holdProxy forwards to the real server; the hold-th snapshot POST is
// stored by the server but its answer is never passed on, so the scraper
// is caught mid-sync.
type holdProxy struct {
	target string
	mu     sync.Mutex
	n      int
	hold   int // 0: pass everything
	held   chan string
	seen   []proxied
}

type proxied struct {
	key      string
	status   int
	replayed bool
}

func (p *holdProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequest(r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := procClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	hold := false
	if r.URL.Path == shared.PathUsage {
		p.mu.Lock()
		p.n++
		hold = p.n == p.hold
		p.seen = append(p.seen, proxied{r.Header.Get(shared.HeaderIdempotencyKey), resp.StatusCode,
			resp.Header.Get(shared.HeaderIdempotentReplayed) == "true"})
		p.mu.Unlock()
	}
	if hold {
		p.held <- r.Header.Get(shared.HeaderIdempotencyKey)
		<-r.Context().Done() // until the scraper dies and its connection closes
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(rb)
}

func (p *holdProxy) log() []proxied {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]proxied{}, p.seen...)
}

// A scraper killed with SIGKILL after the server stored a snapshot but
// before it heard back resends it on restart with the same
// Idempotency-Key: the server replays, and no version is duplicated.
func TestSIGKILLMidSyncNoDuplicate(t *testing.T) {
	t.Parallel()
	addr := testutil.FreeAddr(t)
	startUsageServer(t, addr, t.TempDir())
	px := &holdProxy{target: "http://" + addr, hold: 3, held: make(chan string, 1)}
	proxy := httptest.NewServer(px)
	t.Cleanup(proxy.Close)
	t.Cleanup(procTransport.CloseIdleConnections)
	obDir := t.TempDir()
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)

	start := func(first, count int) *testutil.Process {
		return testutil.StartProcess(t, os.Args[0], nil, testutil.ProcessOptions{Env: []string{childEnv + "=1", childServer + "=" + proxy.URL,
			childOutbox + "=" + obDir, childBase + "=" + base.Format(time.RFC3339Nano), childFirst + "=" + strconv.Itoa(first),
			childCount + "=" + strconv.Itoa(count)}})
	}

	// First run: snapshots 1..6; the third POST is stored and then hangs.
	c1 := start(1, 6)
	var heldKey string
	select {
	case heldKey = <-px.held:
	case <-c1.Done():
		t.Fatalf("child exited before the held POST: %v\n%s", c1.ExitErr(), c1.Log)
	case <-time.After(30 * time.Second):
		t.Fatalf("no POST was held\n%s", c1.Log)
	}
	c1.Kill() // SIGKILL: no cleanup runs
	if c1.ExitErr() == nil {
		t.Fatal("killed child exited cleanly")
	}
	if total, _ := versionTotal(t, "http://"+addr); total != 3 {
		t.Fatalf("server holds %d versions after the kill, want 3", total)
	}
	ob, err := outbox.Open(obDir, outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	items, _ := ob.List()
	if len(items) != 1 || items[0].ID != heldKey {
		t.Fatalf("outbox after the kill = %+v, want only the unacknowledged %s", items, heldKey)
	}

	// Restart: snapshots 4..6, and the held one first.
	c2 := start(4, 3)
	select {
	case <-c2.Done():
		if err := c2.ExitErr(); err != nil {
			t.Fatalf("restarted child: %v\n%s", err, c2.Log)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("restarted child did not finish\n%s", c2.Log)
	}
	total, _ := versionTotal(t, "http://"+addr)
	if total != 6 {
		t.Errorf("server holds %d versions, want exactly 6", total)
	}
	if got, want := percents(t, "http://"+addr, 6), []float64{1, 2, 3, 4, 5, 6}; !reflect.DeepEqual(got, want) {
		t.Errorf("versions = %v, want %v", got, want)
	}
	var replays []proxied
	for _, p := range px.log() {
		if p.key == heldKey {
			replays = append(replays, p)
		}
	}
	if len(replays) != 2 || replays[0].status != http.StatusCreated || replays[1].status != http.StatusOK || !replays[1].replayed {
		t.Errorf("the held snapshot's POSTs = %+v, want 201 then 200 Idempotent-Replayed", replays)
	}
	if n, _ := ob.Len(); n != 0 {
		t.Errorf("outbox holds %d after the restart, want 0", n)
	}
}
