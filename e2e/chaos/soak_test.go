//go:build !js

package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

// soak is what the soak tests share: an outbox of total snapshots drained
// through the sync client while a chaos goroutine breaks things once given
// numbers of posts have succeeded.
type soak struct {
	total   int
	ob      *outbox.Outbox
	client  *upload.Client
	logs    *testutil.LogBuffer
	okPosts atomic.Int32 // 2xx answers to snapshot POSTs, replays included
	killed  atomic.Int32 // bounces
	rng     *rand.Rand   // the run's random kill points and pauses
	limit   time.Duration
	stop    chan struct{} // closed once the drain is over
	// deadline bounds the chaos and start is when the drain began; both
	// are set by run.
	deadline, start time.Time
}

// newSoak fills an outbox with total snapshots for a client posting to
// url. seed tells the runs' random streams apart; limit bounds the drain
// and the chaos; wrap, when not nil, adds a transport under the one that
// counts the successful posts.
func newSoak(t *testing.T, url string, total int, seed uint64, limit time.Duration, wrap func(http.RoundTripper) http.RoundTripper) *soak {
	t.Helper()
	s := &soak{total: total, logs: &testutil.LogBuffer{}, limit: limit, stop: make(chan struct{}),
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), seed))}
	s.client = newClient(url, apiKey, s.logs, &sleepRecorder{}, 3*time.Second)
	var rt http.RoundTripper = &http.Transport{DisableKeepAlives: true}
	if wrap != nil {
		rt = wrap(rt)
	}
	s.client.HTTPClient = &http.Client{Transport: countOK{&s.okPosts, rt}}
	s.ob = openOutbox(t)
	base := time.Now().Add(-2 * time.Hour).UTC()
	for i := range total {
		if _, err := s.ob.Put(newSnapshot(i, base.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		select {
		case <-s.stop:
		default:
			close(s.stop)
		}
	})
	return s
}

// killPoints spreads kills over the run: the i-th after 50+i*step
// successful posts plus up to spread more, at random.
func (s *soak) killPoints(kills int, step, spread int32) []int32 {
	var at []int32
	for i := range kills {
		at = append(at, int32(50)+int32(i)*step+s.rng.Int32N(spread))
	}
	return at
}

// bounce SIGKILLs srv and starts it again after a random pause of up to
// 300 ms.
func (s *soak) bounce(srv *server) error {
	srv.kill()
	s.killed.Add(1)
	time.Sleep(time.Duration(s.rng.IntN(300)) * time.Millisecond)
	return srv.start()
}

// waitPosts waits until n posts succeeded; errStopped when the drain ended
// first.
func (s *soak) waitPosts(n int32) error {
	for s.okPosts.Load() < n {
		select {
		case <-s.stop:
			return errStopped
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(s.deadline) {
			return fmt.Errorf("posts stuck at %d before %d", s.okPosts.Load(), n)
		}
	}
	return nil
}

// run drains the outbox while chaos runs in a goroutine, and fails the test
// when the drain takes more than maxRounds or the limit, or chaos fails.
func (s *soak) run(t *testing.T, maxRounds int, chaos func() error) {
	t.Helper()
	s.deadline = time.Now().Add(s.limit)
	chaosDone := make(chan error, 1)
	go func() { chaosDone <- chaos() }()

	r := drainer(t, s.ob, s.client, s.logs)
	s.start = time.Now()
	for round := 0; ; round++ {
		if round > maxRounds || time.Since(s.start) > s.limit {
			t.Fatalf("outbox not drained after %d rounds, %s", round, time.Since(s.start))
		}
		res := r.Drain(context.Background())
		if res.Err == nil && res.Remaining == 0 {
			break
		}
		if res.Err != nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	close(s.stop)
	if err := <-chaosDone; err != nil && !errors.Is(err, errStopped) {
		t.Fatal(err)
	}
}

var errStopped = errors.New("stopped")

// countOK counts 2xx responses to snapshot POSTs.
type countOK struct {
	n  *atomic.Int32
	rt http.RoundTripper
}

func (c countOK) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	if err == nil && resp.StatusCode/100 == 2 && req.URL.Path == shared.PathUsage {
		c.n.Add(1)
	}
	return resp, err
}
