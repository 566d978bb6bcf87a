package runner

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	goleak.VerifyTestMain(m)
}

func secs(s ...int) []time.Duration {
	out := []time.Duration{}
	for _, n := range s {
		out = append(out, time.Duration(n)*time.Second)
	}
	return out
}

func TestDrain(t *testing.T) {
	t.Parallel()
	always := func(status int) func(int, string, shared.Snapshot) (int, string) {
		return func(int, string, shared.Snapshot) (int, string) { return status, "" }
	}
	for _, tc := range []struct {
		name         string
		usage        func(n int, key string, s shared.Snapshot) (int, string)
		wantPosted   []int // indexes of the queued ids, in POST order
		wantPending  []int
		wantRejected []int
		wantWaits    []time.Duration
		wantErr      shared.Category
	}{
		{"all 201, oldest first", always(201), []int{0, 1, 2}, []int{}, nil, secs(), shared.CategoryNone},
		{"503 x4 keeps everything for the next cycle", always(503), []int{0, 0, 0, 0}, []int{0, 1, 2}, nil, secs(10, 20, 40), shared.CategoryServer},
		{"503 503 201 then the rest", func(n int, _ string, _ shared.Snapshot) (int, string) {
			if n <= 2 {
				return 503, ""
			}
			return 201, ""
		}, []int{0, 0, 0, 1, 2}, []int{}, nil, secs(10, 20), shared.CategoryNone},
		{"400 moves one to rejected/ and goes on", func(n int, _ string, _ shared.Snapshot) (int, string) {
			if n == 2 {
				return 400, ""
			}
			return 201, ""
		}, []int{0, 1, 2}, []int{}, []int{1}, secs(), shared.CategoryNone},
		{"401 stops at once and keeps everything", always(401), []int{0}, []int{0, 1, 2}, nil, secs(), shared.CategoryAuth},
		{"404 stops at once and keeps everything", always(404), []int{0}, []int{0, 1, 2}, nil, secs(), shared.CategoryNotFound},
		{"429 Retry-After 30 then 201", func(n int, _ string, _ shared.Snapshot) (int, string) {
			if n == 1 {
				return 429, "30"
			}
			return 201, ""
		}, []int{0, 0, 1, 2}, []int{}, nil, secs(30), shared.CategoryNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := newFakeServer(t, tc.usage)
			rg := newRig(t, fs.srv.URL, nil, nil)
			ids := rg.put(t, 3)
			res := rg.r.Drain(context.Background())
			pick := func(ix []int) []string {
				out := []string{}
				for _, i := range ix {
					out = append(out, ids[i])
				}
				return out
			}
			keys, _, _ := fs.seen()
			if got, want := keys, pick(tc.wantPosted); !reflect.DeepEqual(got, want) {
				t.Errorf("POSTed keys = %v, want %v", got, want)
			}
			if got, want := rg.pending(t), pick(tc.wantPending); !reflect.DeepEqual(got, want) {
				t.Errorf("still pending = %v, want %v", got, want)
			}
			if got, want := rg.syncWait.got(), tc.wantWaits; !reflect.DeepEqual(got, want) {
				t.Errorf("sync waits = %v, want %v", got, want)
			}
			if got := upload.CategoryOf(res.Err); got != tc.wantErr {
				t.Errorf("drain error category = %q, want %q (%v)", got, tc.wantErr, res.Err)
			}
			if got, want := res.Remaining, len(tc.wantPending); got != want {
				t.Errorf("Remaining = %d, want %d", got, want)
			}
			for _, i := range tc.wantRejected {
				m, _ := filepath.Glob(filepath.Join(rg.ob.Dir(), outbox.RejectedDir, "*-"+ids[i]+".json"))
				if len(m) != 1 {
					t.Errorf("snapshot %d not in rejected/", i)
				}
			}
			if got, want := res.Rejected, len(tc.wantRejected); got != want {
				t.Errorf("Rejected = %d, want %d", got, want)
			}
		})
	}
}

func TestCycleStoresBeforeFirstPostAndReports(t *testing.T) {
	t.Parallel()
	var rg *rig
	var storedFirst []bool
	fs := newFakeServer(t, func(n int, key string, s shared.Snapshot) (int, string) {
		m, _ := filepath.Glob(filepath.Join(rg.ob.Dir(), "*-"+key+".json"))
		storedFirst = append(storedFirst, len(m) == 1)
		return 201, ""
	})
	rg = newRig(t, fs.srv.URL, nil, nil)
	res := rg.r.Cycle(context.Background())
	if !res.Scraped || res.ScrapeErr != nil || res.ID == "" || res.Drain.Sent != 1 || !res.Reported {
		t.Fatalf("cycle = %+v", res)
	}
	keys, snaps, statuses := fs.seen()
	if !reflect.DeepEqual(storedFirst, []bool{true}) || !reflect.DeepEqual(keys, []string{res.ID}) {
		t.Errorf("snapshot was not in the outbox at its first POST: stored=%v keys=%v id=%s", storedFirst, keys, res.ID)
	}
	if got, want := snaps[0].Account, "work"; got != want {
		t.Errorf("posted account = %q, want the configured %q", got, want)
	}
	if got := rg.pending(t); len(got) != 0 {
		t.Errorf("outbox after a 2xx = %v, want empty", got)
	}
	want := shared.ScraperStatus{Account: "work", At: t0, OK: true, Category: shared.ScrapeOK}
	if len(statuses) != 1 || statuses[0] != want {
		t.Errorf("statuses = %+v, want [%+v]", statuses, want)
	}
	if got := rg.scraper.urls; !reflect.DeepEqual(got, []string{"https://claude.ai/settings/usage"}) {
		t.Errorf("scraped %v", got)
	}
	st := rg.client.Tracker.State()
	if st.LastScrape == nil || !st.LastScrape.OK || st.LastSuccess == nil {
		t.Errorf("tracker state = %+v", st)
	}
}

func TestCycleScrapeFailureIsReportedWithItsClass(t *testing.T) {
	t.Parallel()
	for _, class := range []scrapeerr.Class{scrapeerr.NotLoggedIn, scrapeerr.Challenge, scrapeerr.LayoutChanged, scrapeerr.Browser, scrapeerr.Network} {
		t.Run(string(class), func(t *testing.T) {
			t.Parallel()
			fs := newFakeServer(t, nil)
			rg := newRig(t, fs.srv.URL, func(int) error { return scrapeerr.New(class, nil, "scripted") }, nil)
			res := rg.r.Cycle(context.Background())
			if scrapeerr.ClassOf(res.ScrapeErr) != class || !res.Reported {
				t.Fatalf("cycle = %+v", res)
			}
			keys, _, statuses := fs.seen()
			if len(keys) != 0 {
				t.Errorf("a failed scrape posted %d snapshots", len(keys))
			}
			if len(statuses) != 1 || statuses[0].OK || statuses[0].Category != string(class) ||
				!strings.Contains(statuses[0].Message, class.NextStep()) {
				t.Errorf("statuses = %+v, want one failure of class %s with its next step", statuses, class)
			}
			st := rg.client.Tracker.State()
			if st.LastError == nil || st.LastError.Kind != "scrape" || st.LastError.Category != string(class) {
				t.Errorf("last error = %+v", st.LastError)
			}
			logs := rg.logs.lines(t, "scrape failed")
			if len(logs) != 1 || logs[0]["category"] != string(class) || logs[0]["nextStep"] != class.NextStep() {
				t.Errorf("scrape failure log = %v", logs)
			}
		})
	}
}

// While the server is down every scrape is kept; once it is back one drain
// sends them all, oldest first, and nothing is lost.
func TestServerDownThenUpLosesNothing(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	rg := newRig(t, down, nil, nil)
	var ids []string
	for range 5 {
		res := rg.r.Cycle(context.Background())
		if !res.Scraped || res.ScrapeErr != nil {
			t.Fatalf("scraping stopped while the server is down: %+v", res)
		}
		if got := upload.CategoryOf(res.Drain.Err); got != shared.CategoryNetwork {
			t.Fatalf("drain error = %q, want NETWORK", got)
		}
		if res.Reported {
			t.Error("status reported to a server that is down")
		}
		ids = append(ids, res.ID)
	}
	if got := rg.pending(t); !reflect.DeepEqual(got, ids) {
		t.Fatalf("pending = %v, want all five %v", got, ids)
	}
	// Each cycle tried only the oldest snapshot: 1 attempt + 3 retries.
	if got, want := len(rg.logs.lines(t, "sync attempt")), 5*4; got != want {
		t.Errorf("attempts while down = %d, want %d", got, want)
	}
	fs := newFakeServer(t, nil)
	rg.client.ServerURL = fs.srv.URL
	res := rg.r.Cycle(context.Background())
	keys, _, statuses := fs.seen()
	if want := append(append([]string{}, ids...), res.ID); !reflect.DeepEqual(keys, want) {
		t.Errorf("POST order = %v, want oldest first %v", keys, want)
	}
	if res.Drain.Sent != 6 || res.Drain.Remaining != 0 || len(rg.pending(t)) != 0 {
		t.Errorf("drain = %+v, pending %v", res.Drain, rg.pending(t))
	}
	if len(statuses) != 1 || !statuses[0].OK {
		t.Errorf("statuses after recovery = %+v", statuses)
	}
}

// Scrape failures back off 1, 2, 4, 8, … cycles (at most 12) and trip the
// breaker after 3, which then lets one probe through every cooldown.
func TestRepeatedScrapeFailuresBackOffAndTripBreaker(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, nil)
	var scrapedAt []time.Duration
	var rg *rig
	rg = newRig(t, fs.srv.URL, func(n int) error {
		scrapedAt = append(scrapedAt, rg.clk.Now().Sub(t0))
		if n <= 6 {
			return notLoggedIn(n)
		}
		return nil
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rg.runSleep.after = func(n int) {
		if n == 48 {
			cancel()
		}
	}
	if err := rg.r.Run(ctx); err != nil {
		t.Fatalf("Run = %v", err)
	}
	min := func(m ...int) []time.Duration {
		out := []time.Duration{}
		for _, v := range m {
			out = append(out, time.Duration(v)*time.Minute)
		}
		return out
	}
	// Cycles every 5 min. Failures at 0, 10, 25 (breaker opens), probes at
	// 55, 100, 165 (backoff 4, 8, 12 cycles; breaker 30 min), success at 230
	// closes it, and 235 scrapes again as usual.
	if got, want := scrapedAt, min(0, 10, 25, 55, 100, 165, 230, 235); !reflect.DeepEqual(got, want) {
		t.Errorf("scrapes at %v, want %v", got, want)
	}
	type tr struct {
		from, to string
		at       time.Duration
	}
	var got []tr
	for _, l := range rg.logs.lines(t, "scrape breaker transition") {
		at, _ := time.Parse(time.RFC3339, l["at"].(string))
		got = append(got, tr{l["from"].(string), l["to"].(string), at.Sub(t0)})
		if _, ok := l["failures"]; !ok {
			t.Errorf("transition log lacks failures: %v", l)
		}
	}
	want := []tr{
		{"CLOSED", "OPEN", 25 * time.Minute},
		{"OPEN", "HALF_OPEN", 55 * time.Minute}, {"HALF_OPEN", "OPEN", 55 * time.Minute},
		{"OPEN", "HALF_OPEN", 100 * time.Minute}, {"HALF_OPEN", "OPEN", 100 * time.Minute},
		{"OPEN", "HALF_OPEN", 165 * time.Minute}, {"HALF_OPEN", "OPEN", 165 * time.Minute},
		{"OPEN", "HALF_OPEN", 230 * time.Minute}, {"HALF_OPEN", "CLOSED", 230 * time.Minute},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("transitions = %v\nwant %v", got, want)
	}
	if st := rg.r.Breaker().State(); st != shared.StateClosed {
		t.Errorf("breaker = %v after recovery, want CLOSED", st)
	}
	_, snaps, statuses := fs.seen()
	if len(snaps) != 2 || len(statuses) != 8 {
		t.Errorf("server saw %d snapshots and %d statuses, want 2 and 8", len(snaps), len(statuses))
	}
	if len(rg.logs.lines(t, "scraping recovered")) != 1 {
		t.Error("recovery not logged")
	}
	skips := rg.logs.lines(t, "scrape skipped")
	if got, want := len(skips), 48-8; got != want {
		t.Errorf("logged %d skipped cycles, want %d", got, want)
	}
}

func TestRunCadenceJitterAndSlowSync(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, func(n int, _ string, _ shared.Snapshot) (int, string) {
		if n == 2 || n == 3 {
			return 503, "" // the second cycle's sync waits 10 s + 20 s
		}
		return 201, ""
	})
	rands := []float64{0, 0.75, 0.5}
	var rg *rig
	rg = newRig(t, fs.srv.URL, nil, func(c *Config) {
		c.Rand = func() float64 {
			v := rands[0]
			rands = rands[1:]
			return v
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rg.runSleep.after = func(n int) {
		if n == 3 {
			cancel()
		}
	}
	if err := rg.r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// 5 min ± 10 %: 4m30s, then 5m15s less the 30 s the sync took, then 5m.
	want := []time.Duration{4*time.Minute + 30*time.Second, 4*time.Minute + 45*time.Second, 5 * time.Minute}
	if got := rg.runSleep.got(); !reflect.DeepEqual(got, want) {
		t.Errorf("waits between cycles = %v, want %v", got, want)
	}
	if got := rg.scraper.count(); got != 3 {
		t.Errorf("scrapes = %d, want 3", got)
	}
	if len(rg.logs.lines(t, "scraper stopped")) != 1 {
		t.Error("stop not logged")
	}
}

func TestScrapeTimeoutIsNetwork(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, nil)
	rg := newRig(t, fs.srv.URL, nil, func(c *Config) { c.ScrapeTimeout = 20 * time.Millisecond })
	hang := &hangScraper{}
	rg.r.cfg.Scraper = hang
	res := rg.r.Cycle(context.Background())
	if got := scrapeerr.ClassOf(res.ScrapeErr); got != scrapeerr.Network {
		t.Errorf("class = %q, want NETWORK (%v)", got, res.ScrapeErr)
	}
	if _, _, st := fs.seen(); len(st) != 1 || st[0].Category != shared.ScrapeNetwork {
		t.Errorf("statuses = %+v", st)
	}
}

type hangScraper struct{}

func (hangScraper) Scrape(ctx context.Context, _ string) (shared.Snapshot, error) {
	<-ctx.Done()
	return shared.Snapshot{}, ctx.Err()
}

func TestOutboxWriteFailureStillSends(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, nil)
	rg := newRig(t, fs.srv.URL, nil, nil)
	dir := rg.ob.Dir()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := rg.r.Cycle(context.Background())
	if res.ID != "" {
		t.Errorf("cycle claims outbox id %q", res.ID)
	}
	keys, snaps, _ := fs.seen()
	if len(keys) != 1 || keys[0] == "" || snaps[0].Account != "work" {
		t.Errorf("direct send: keys %v", keys)
	}
	if len(rg.logs.lines(t, "outbox write failed; sending the snapshot directly")) != 1 {
		t.Error("outbox failure not logged")
	}
	if res.Drain.Err == nil {
		t.Error("an unreadable outbox did not fail the drain")
	}
}

func TestNewChecksConfig(t *testing.T) {
	t.Parallel()
	ob, err := outbox.Open(t.TempDir(), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	good := Config{Scraper: &scripted{}, Outbox: ob, Client: &upload.Client{}, UsageURL: "u"}
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"no scraper", func(c *Config) { c.Scraper = nil }, "runner: a scraper is required"},
		{"no outbox", func(c *Config) { c.Outbox = nil }, "runner: an outbox is required"},
		{"no client", func(c *Config) { c.Client = nil }, "runner: a sync client is required"},
		{"no url", func(c *Config) { c.UsageURL = "" }, "runner: the usage page URL is required"},
		{"bad account", func(c *Config) { c.Account = "Bad/Name" }, "runner: account"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mut(&c)
			if _, err := New(c); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("New = %v, want %q", err, tc.want)
			}
		})
	}
	r, err := New(good)
	if err != nil {
		t.Fatal(err)
	}
	if r.cfg.Interval != DefaultInterval || r.cfg.Account != shared.DefaultAccount || r.cfg.DrainBudget != DefaultInterval/2 {
		t.Errorf("defaults = %+v", r.cfg)
	}
}

func TestSkipFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ n, want int }{{1, 1}, {2, 2}, {3, 4}, {4, 8}, {5, 12}, {6, 12}, {100, 12}} {
		if got := skipFor(tc.n, 12); got != tc.want {
			t.Errorf("skipFor(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func TestDrainBudget(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, func(n int, _ string, _ shared.Snapshot) (int, string) {
		if n == 1 {
			return 503, "" // the first snapshot's retry eats the 10 s budget
		}
		return 201, ""
	})
	rg := newRig(t, fs.srv.URL, nil, func(c *Config) { c.DrainBudget = 10 * time.Second })
	ids := rg.put(t, 3)
	res := rg.r.Drain(context.Background())
	if res.Sent != 1 || res.Remaining != 2 || res.Err != nil {
		t.Errorf("drain = %+v, want 1 sent and 2 left for the next cycle", res)
	}
	if got, want := rg.pending(t), ids[1:]; !reflect.DeepEqual(got, want) {
		t.Errorf("pending = %v, want %v", got, want)
	}
}

// Many failed syncs and a stopped runner leave no goroutine behind. Not
// parallel: goleak looks at the whole process.
func TestNoLeaksAfterManyFailedSyncs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	slow := newFakeServer(t, func(int, string, shared.Snapshot) (int, string) { return 503, "" })
	rg := newRig(t, down, nil, func(c *Config) { c.Interval = time.Minute })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rg.runSleep.after = func(n int) {
		switch n {
		case 25:
			rg.client.ServerURL = slow.srv.URL // refused, then 503s
		case 50:
			cancel()
		}
	}
	done := make(chan error, 1)
	go func() { done <- rg.r.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop")
	}
	if got, want := len(rg.logs.lines(t, "sync attempt")), 50*4; got != want {
		t.Errorf("failed attempts = %d, want %d", got, want)
	}
	if n, _ := rg.ob.Len(); n != 50 {
		t.Errorf("outbox holds %d, want all 50", n)
	}
	rg.client.HTTPClient.CloseIdleConnections()
	slow.srv.Close()
	goleak.VerifyNone(t)
}

func TestCycleStopsOnCancel(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, nil)
	rg := newRig(t, fs.srv.URL, nil, nil)
	rg.r.cfg.Scraper = hangScraper{}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(10 * time.Millisecond)
		cancel()
	}()
	res := rg.r.Cycle(ctx)
	if !errors.Is(res.ScrapeErr, context.Canceled) || res.Reported {
		t.Errorf("cycle = %+v", res)
	}
	if keys, _, st := fs.seen(); len(keys)+len(st) != 0 {
		t.Error("a cancelled cycle talked to the server")
	}
	if f := rg.r.Breaker().Failures(); f != 0 {
		t.Errorf("shutdown counted as a scrape failure: %d", f)
	}
}
