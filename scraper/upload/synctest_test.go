package upload

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/claude-usage/widget/shared"
)

// stampTransport records, on the bubble's fake clock, when each attempt
// starts.
type stampTransport struct {
	next   http.RoundTripper
	start  time.Time
	mu     sync.Mutex
	stamps []time.Duration
}

func (s *stampTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.stamps = append(s.stamps, time.Since(s.start))
	s.mu.Unlock()
	return s.next.RoundTrip(r)
}

// gaps returns the time between consecutive attempts.
func (s *stampTransport) gaps() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []time.Duration{}
	for i := 1; i < len(s.stamps); i++ {
		out = append(out, s.stamps[i]-s.stamps[i-1])
	}
	return out
}

// bubbleClient is a Client without an injected Sleep: the waits are
// go-retry's own timers, which run on the bubble's fake clock. The server
// lives outside the bubble; keep-alives are off so that no connection
// goroutine of the bubble sits in a network read while the clock should
// advance.
func bubbleClient(url string) (*Client, *stampTransport) {
	st := &stampTransport{next: &http.Transport{DisableKeepAlives: true}, start: time.Now()}
	return &Client{ServerURL: url, APIKey: testKey, Logger: slog.New(slog.DiscardHandler),
		HTTPClient: &http.Client{Transport: st}}, st
}

func TestSendWaitsOnGoRetryTimers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		steps     []step
		wantGaps  []time.Duration
		wantTotal time.Duration
		wantCat   shared.Category
	}{
		{"503 x4", []step{{status: 503}, {status: 503}, {status: 503}, {status: 503}}, secs(10, 20, 40), 70 * time.Second, shared.CategoryServer},
		{"503 503 201", []step{{status: 503}, {status: 503}, {status: 201}}, secs(10, 20), 30 * time.Second, shared.CategoryNone},
		{"429 Retry-After 30", []step{{status: 429, retryAfter: "30"}, {status: 201}}, secs(30), 30 * time.Second, shared.CategoryNone},
		{"429 Retry-After 5", []step{{status: 429, retryAfter: "5"}, {status: 201}}, secs(10), 10 * time.Second, shared.CategoryNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := newFaultServer(t, tc.steps...)
			synctest.Test(t, func(t *testing.T) {
				c, st := bubbleClient(fs.srv.URL)
				start := time.Now()
				_, err := c.Send(context.Background(), testID, testSnap())
				if got, want := time.Since(start), tc.wantTotal; got != want {
					t.Errorf("Send took %v of fake time, want exactly %v", got, want)
				}
				if got, want := st.gaps(), tc.wantGaps; !reflect.DeepEqual(got, want) {
					t.Errorf("gaps between attempts = %v, want %v", got, want)
				}
				if got := CategoryOf(err); got != tc.wantCat {
					t.Errorf("category = %q, want %q (%v)", got, tc.wantCat, err)
				}
			})
		})
	}
}

// A shutdown during a 40 s wait ends Send at once, without waiting out the
// timer; synctest.Test fails if any goroutine or timer of the bubble is left.
func TestSendCancelDuringWaitLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	fs := newFaultServer(t, step{status: 503}, step{status: 503}, step{status: 503})
	synctest.Test(t, func(t *testing.T) {
		c, st := bubbleClient(fs.srv.URL)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := c.Send(ctx, testID, testSnap())
			done <- err
		}()
		time.Sleep(45 * time.Second) // attempts at 0 s, 10 s and 30 s; now in the 40 s wait
		synctest.Wait()
		cancel()
		err := <-done
		if got, want := time.Since(start), 45*time.Second; got != want {
			t.Errorf("Send returned after %v, want %v (at the cancel)", got, want)
		}
		var se *Error
		if !errors.As(err, &se) || se.Attempts != 3 || !se.Category.Retryable() {
			t.Errorf("err = %v; want a retryable *Error after 3 attempts", err)
		}
		if got, want := len(st.gaps()), 2; got != want {
			t.Errorf("%d gaps, want %d", got, want)
		}
	})
}
