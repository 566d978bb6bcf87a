package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/claude-usage/widget/internal/testutil"
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
		wantGaps     []time.Duration // between consecutive POSTs
		wantErr      shared.Category
	}{
		{"all 201, oldest first", always(201), []int{0, 1, 2}, []int{}, nil, testutil.Secs(0, 0), shared.CategoryNone},
		// 503 is the server unavailable as a whole: no other snapshot is tried.
		{"503 x4 keeps everything for the next cycle", always(503), []int{0, 0, 0, 0}, []int{0, 1, 2}, nil, testutil.Secs(10, 20, 40), shared.CategoryServer},
		// Two snapshots in a row failing with 500: the server, not the snapshot.
		{"500 always: two snapshots tried, everything kept", always(500), []int{0, 0, 0, 0, 1, 1, 1, 1}, []int{0, 1, 2}, nil,
			testutil.Secs(10, 20, 40, 0, 10, 20, 40), shared.CategoryServer},
		// No head-of-line blocking: the snapshot the server keeps failing
		// goes behind the others, which are still sent in this drain.
		{"500 on the oldest only: it waits behind, the rest are sent", func(_ int, _ string, s shared.Snapshot) (int, string) {
			if s.Meters[0].PercentUsed == 0 {
				return 500, ""
			}
			return 201, ""
		}, []int{0, 0, 0, 0, 1, 2}, []int{0}, nil, testutil.Secs(10, 20, 40, 0, 0), shared.CategoryNone},
		{"503 503 201 then the rest", func(n int, _ string, _ shared.Snapshot) (int, string) {
			if n <= 2 {
				return 503, ""
			}
			return 201, ""
		}, []int{0, 0, 0, 1, 2}, []int{}, nil, testutil.Secs(10, 20, 0, 0), shared.CategoryNone},
		{"400 moves one to rejected/ and goes on", func(n int, _ string, _ shared.Snapshot) (int, string) {
			if n == 2 {
				return 400, ""
			}
			return 201, ""
		}, []int{0, 1, 2}, []int{}, []int{1}, testutil.Secs(0, 0), shared.CategoryNone},
		{"401 stops at once and keeps everything", always(401), []int{0}, []int{0, 1, 2}, nil, testutil.Secs(), shared.CategoryAuth},
		{"404 stops at once and keeps everything", always(404), []int{0}, []int{0, 1, 2}, nil, testutil.Secs(), shared.CategoryNotFound},
		{"429 Retry-After 30 then 201", func(n int, _ string, _ shared.Snapshot) (int, string) {
			if n == 1 {
				return 429, "30"
			}
			return 201, ""
		}, []int{0, 0, 1, 2}, []int{}, nil, testutil.Secs(30, 0, 0), shared.CategoryNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := newFakeServer(t, tc.usage)
			synctest.Test(t, func(t *testing.T) {
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
				if got, want := rg.posts.Gaps(), tc.wantGaps; !reflect.DeepEqual(got, want) {
					t.Errorf("time between POSTs = %v, want %v", got, want)
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
		})
	}
}

func TestCycleStoresBeforeFirstPostAndReports(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var storedFirst []bool
	var dir string
	fs := newFakeServer(t, func(n int, key string, s shared.Snapshot) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		m, _ := filepath.Glob(filepath.Join(dir, "*-"+key+".json"))
		storedFirst = append(storedFirst, len(m) == 1)
		return 201, ""
	})
	synctest.Test(t, func(t *testing.T) {
		rg := newRig(t, fs.srv.URL, nil, nil)
		mu.Lock()
		dir = rg.ob.Dir()
		mu.Unlock()
		res := rg.r.Cycle(context.Background())
		if !res.Scraped || res.ScrapeErr != nil || res.ID == "" || res.Drain.Sent != 1 || !res.Reported {
			t.Fatalf("cycle = %+v", res)
		}
		keys, snaps, statuses := fs.seen()
		mu.Lock()
		if !reflect.DeepEqual(storedFirst, []bool{true}) || !reflect.DeepEqual(keys, []string{res.ID}) {
			t.Errorf("snapshot was not in the outbox at its first POST: stored=%v keys=%v id=%s", storedFirst, keys, res.ID)
		}
		mu.Unlock()
		if got, want := snaps[0].Account, "work"; got != want {
			t.Errorf("posted account = %q, want the configured %q", got, want)
		}
		if got := rg.pending(t); len(got) != 0 {
			t.Errorf("outbox after a 2xx = %v, want empty", got)
		}
		want := shared.ScraperStatus{Account: "work", At: rg.start.UTC(), OK: true, Category: shared.ScrapeOK}
		if len(statuses) != 1 || !statuses[0].At.Equal(want.At) || statuses[0].Account != want.Account || !statuses[0].OK || statuses[0].Category != want.Category {
			t.Errorf("statuses = %+v, want [%+v]", statuses, want)
		}
		if got := rg.scraper.urls; !reflect.DeepEqual(got, []string{"https://claude.ai/settings/usage"}) {
			t.Errorf("scraped %v", got)
		}
		st := rg.client.Tracker.State()
		if st.LastScrape == nil || !st.LastScrape.OK || st.LastSuccess == nil {
			t.Errorf("tracker state = %+v", st)
		}
	})
}

func TestCycleScrapeFailureIsReportedWithItsClass(t *testing.T) {
	t.Parallel()
	for _, class := range []scrapeerr.Class{scrapeerr.NotLoggedIn, scrapeerr.Challenge, scrapeerr.LayoutChanged, scrapeerr.Browser, scrapeerr.Network} {
		t.Run(string(class), func(t *testing.T) {
			t.Parallel()
			fs := newFakeServer(t, nil)
			synctest.Test(t, func(t *testing.T) {
				rg := newRig(t, fs.srv.URL, func(int) error { return scrapeerr.New(class, nil, "scripted") }, nil)
				res := rg.r.Cycle(context.Background())
				if scrapeerr.ClassOf(res.ScrapeErr) != class || !res.Reported {
					t.Fatalf("cycle = %+v", res)
				}
				keys, _, statuses := fs.seen()
				if len(keys) != 0 {
					t.Errorf("a failed scrape posted %d snapshots", len(keys))
				}
				if len(statuses) != 1 || statuses[0].OK || statuses[0].Category != class ||
					!strings.Contains(statuses[0].Message, class.NextStep()) {
					t.Errorf("statuses = %+v, want one failure of class %s with its next step", statuses, class)
				}
				st := rg.client.Tracker.State()
				if st.LastError == nil || st.LastError.Kind != "scrape" || st.LastError.Category != string(class) {
					t.Errorf("last error = %+v", st.LastError)
				}
				logs := testutil.LogRecords(t, rg.logs.String(), "scrape failed")
				if len(logs) != 1 || logs[0]["category"] != string(class) || logs[0]["nextStep"] != class.NextStep() {
					t.Errorf("scrape failure log = %v", logs)
				}
			})
		})
	}
}

// While the server is down every scrape is kept; once it is back one drain
// sends them all, oldest first, and nothing is lost.
func TestServerDownThenUpLosesNothing(t *testing.T) {
	t.Parallel()
	down := "http://" + testutil.FreeAddr(t)
	fs := newFakeServer(t, nil)
	synctest.Test(t, func(t *testing.T) {
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
		// Each cycle tried only one snapshot: 1 attempt + 3 retries; a
		// refused connection says the server is down, not the snapshot.
		if got, want := len(testutil.LogRecords(t, rg.logs.String(), "sync attempt")), 5*4; got != want {
			t.Errorf("attempts while down = %d, want %d", got, want)
		}
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
	})
}

// Scrape failures back off 1, 2, 4, 8, … cycles (at most 12) and trip the
// breaker after 3, which then lets one probe through every cooldown.
func TestRepeatedScrapeFailuresBackOffAndTripBreaker(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, nil)
	synctest.Test(t, func(t *testing.T) {
		var scrapedAt []time.Duration
		var rg *rig
		rg = newRig(t, fs.srv.URL, func(n int) error {
			scrapedAt = append(scrapedAt, time.Since(rg.start))
			if n <= 6 {
				return notLoggedIn(n)
			}
			return nil
		}, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- rg.r.Run(ctx) }()
		// 48 cycles, every 5 min: the last at 235 min.
		time.Sleep(237 * time.Minute)
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		min := func(m ...int) []time.Duration {
			out := []time.Duration{}
			for _, v := range m {
				out = append(out, time.Duration(v)*time.Minute)
			}
			return out
		}
		// Failures at 0, 10, 25 (breaker opens), probes at 55, 100, 165
		// (backoff 4, 8, 12 cycles; breaker 30 min), success at 230 closes
		// it, and 235 scrapes again as usual.
		if got, want := scrapedAt, min(0, 10, 25, 55, 100, 165, 230, 235); !reflect.DeepEqual(got, want) {
			t.Errorf("scrapes at %v, want %v", got, want)
		}
		type tr struct {
			from, to string
			at       time.Duration
		}
		var got []tr
		for _, l := range testutil.LogRecords(t, rg.logs.String(), "scrape breaker transition") {
			at, _ := time.Parse(time.RFC3339Nano, l["at"].(string))
			got = append(got, tr{l["from"].(string), l["to"].(string), at.Sub(rg.start)})
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
		if len(testutil.LogRecords(t, rg.logs.String(), "scraping recovered")) != 1 {
			t.Error("recovery not logged")
		}
		skips := testutil.LogRecords(t, rg.logs.String(), "scrape skipped")
		if got, want := len(skips), 48-8; got != want {
			t.Errorf("logged %d skipped cycles, want %d", got, want)
		}
	})
}

func TestRunCadenceJitterAndSlowSync(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, func(n int, _ string, _ shared.Snapshot) (int, string) {
		if n == 2 || n == 3 {
			return 503, "" // the second cycle's sync waits 10 s + 20 s
		}
		return 201, ""
	})
	synctest.Test(t, func(t *testing.T) {
		rands := []float64{0, 0.75, 0.5, 0.5}
		var at []time.Duration
		var rg *rig
		rg = newRig(t, fs.srv.URL, func(int) error { at = append(at, time.Since(rg.start)); return nil }, func(c *Config) {
			c.Rand = func() float64 {
				v := rands[0]
				rands = rands[1:]
				return v
			}
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- rg.r.Run(ctx) }()
		time.Sleep(16 * time.Minute)
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// 5 min ± 10 % from cycle start to cycle start: 4m30s; 5m15s (the
		// 30 s the sync took are inside it); 5m.
		want := []time.Duration{0, 4*time.Minute + 30*time.Second, 9*time.Minute + 45*time.Second, 14*time.Minute + 45*time.Second}
		if !reflect.DeepEqual(at, want) {
			t.Errorf("scrapes at %v, want %v", at, want)
		}
		if len(testutil.LogRecords(t, rg.logs.String(), "scraper stopped")) != 1 {
			t.Error("stop not logged")
		}
	})
}

func TestScrapeTimeoutIsNetwork(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, nil)
	synctest.Test(t, func(t *testing.T) {
		rg := newRig(t, fs.srv.URL, nil, func(c *Config) { c.Scraper = hangScraper{}; c.ScrapeTimeout = 20 * time.Second })
		res := rg.r.Cycle(context.Background())
		if got := scrapeerr.ClassOf(res.ScrapeErr); got != scrapeerr.Network {
			t.Errorf("class = %q, want NETWORK (%v)", got, res.ScrapeErr)
		}
		if got, want := time.Since(rg.start), 20*time.Second; got != want {
			t.Errorf("the scrape was given up after %v, want %v", got, want)
		}
		if _, _, st := fs.seen(); len(st) != 1 || st[0].Category != shared.ScrapeNetwork {
			t.Errorf("statuses = %+v", st)
		}
	})
}

type hangScraper struct{}

func (hangScraper) Scrape(ctx context.Context, _ string) (shared.Snapshot, error) {
	<-ctx.Done()
	return shared.Snapshot{}, ctx.Err()
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

func TestDrainBudget(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, func(n int, _ string, _ shared.Snapshot) (int, string) {
		if n == 1 {
			return 503, "" // the first snapshot's retry eats the 10 s budget
		}
		return 201, ""
	})
	synctest.Test(t, func(t *testing.T) {
		rg := newRig(t, fs.srv.URL, nil, func(c *Config) { c.DrainBudget = 10 * time.Second })
		ids := rg.put(t, 3)
		res := rg.r.Drain(context.Background())
		if res.Sent != 1 || res.Remaining != 2 || res.Err != nil {
			t.Errorf("drain = %+v, want 1 sent and 2 left for the next cycle", res)
		}
		if got, want := rg.pending(t), ids[1:]; !reflect.DeepEqual(got, want) {
			t.Errorf("pending = %v, want %v", got, want)
		}
	})
}

// Many failed syncs (dropped connections, then 503s) leave nothing behind:
// synctest.Test fails if a goroutine or timer of the bubble outlives it.
func TestNoLeaksAfterManyFailedSyncs(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, func(n int, _ string, _ shared.Snapshot) (int, string) {
		if n <= 25*4 {
			return 0, ""
		}
		return 503, ""
	})
	synctest.Test(t, func(t *testing.T) {
		rg := newRig(t, fs.srv.URL, nil, func(c *Config) { c.Interval = time.Minute })
		for range 50 {
			rg.r.Cycle(context.Background())
		}
		if got, want := len(testutil.LogRecords(t, rg.logs.String(), "sync attempt")), 50*4; got != want {
			t.Errorf("failed attempts = %d, want %d", got, want)
		}
		if n, _ := rg.ob.Len(); n != 50 {
			t.Errorf("outbox holds %d, want all 50", n)
		}
	})
}

func TestCycleStopsOnCancel(t *testing.T) {
	t.Parallel()
	fs := newFakeServer(t, nil)
	synctest.Test(t, func(t *testing.T) {
		rg := newRig(t, fs.srv.URL, nil, func(c *Config) { c.Scraper = hangScraper{} })
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			time.Sleep(10 * time.Second)
			cancel()
		}()
		res := rg.r.Cycle(ctx)
		if !errors.Is(res.ScrapeErr, context.Canceled) || res.Reported {
			t.Errorf("cycle = %+v", res)
		}
		if got, want := time.Since(rg.start), 10*time.Second; got != want {
			t.Errorf("the cycle ended after %v, want at the cancel (%v)", got, want)
		}
		if keys, _, st := fs.seen(); len(keys)+len(st) != 0 {
			t.Error("a cancelled cycle talked to the server")
		}
		if f := rg.r.Breaker().Failures(); f != 0 {
			t.Errorf("shutdown counted as a scrape failure: %d", f)
		}
	})
}
