//go:build !(js && wasm)

package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/claude-usage/widget/shared"
)

// The schedule tests run the real client against a real HTTP server inside
// a synctest bubble: the retry waits and the breaker's cooldown pass on the
// bubble's fake clock, so the time a cycle took is exactly the sum of its
// waits. The server lives outside the bubble and the transport keeps no
// idle connection, because a goroutine parked on a socket read is not
// "durably blocked" and would stop the fake clock.

func usageBody(account string) shared.UsageResponse {
	return shared.UsageResponse{
		Snapshot: shared.Snapshot{
			Account:   account,
			ScrapedAt: time.Date(2026, 11, 28, 13, 50, 0, 0, time.UTC),
			Capture:   shared.CaptureAPI,
			Meters:    []shared.Meter{{ID: "session", Label: "Current session", PercentUsed: 42}},
		},
		AgeSeconds: 600,
	}
}

// answer is one scripted response: a status and, for a 429, its
// Retry-After.
type answer struct {
	status     int
	retryAfter string
}

// script answers each request with the next answer (the last repeats);
// 200 sends a usage body, other statuses the error body of their code.
type script struct {
	mu      sync.Mutex
	answers []answer
	hits    atomic.Int32
	auth    []string
	queries []string
}

func statuses(ss ...int) []answer {
	a := make([]answer, len(ss))
	for i, s := range ss {
		a[i] = answer{status: s}
	}
	return a
}

func (s *script) set(a ...answer) {
	s.mu.Lock()
	s.answers = a
	s.mu.Unlock()
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(s.hits.Add(1))
	s.mu.Lock()
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	s.queries = append(s.queries, r.URL.RawQuery)
	a := s.answers[min(n, len(s.answers))-1]
	s.mu.Unlock()
	if r.URL.Path != shared.PathUsage {
		http.Error(w, "wrong path "+r.URL.Path, http.StatusTeapot)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if a.status == http.StatusOK {
		account := r.URL.Query().Get("account")
		if account == "" {
			account = "default"
		}
		_ = json.NewEncoder(w).Encode(usageBody(account))
		return
	}
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	code := map[int]shared.Code{
		400: shared.CodeInvalidQuery, 401: shared.CodeAuthInvalidKey, 403: shared.CodeAuthInvalidKey,
		404: shared.CodeNoData, 405: shared.CodeMethodNotAllowed, 413: shared.CodePayloadTooLarge,
		415: shared.CodeUnsupportedMediaType, 422: shared.CodeIdempotencyKeyReused, 429: shared.CodeRateLimited,
		500: shared.CodeInternal, 503: shared.CodeStorageUnavailable, 507: shared.CodeStorageDiskFull,
	}[a.status]
	w.WriteHeader(a.status)
	_ = json.NewEncoder(w).Encode(shared.ErrorBody{ErrorCode: code, Message: "scripted", Category: code.Info().Category})
}

// serve starts s on 127.0.0.1 outside any bubble.
func serve(t *testing.T, s http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL
}

// newClient builds a client for use inside a bubble: its transport and
// breaker belong to the bubble.
func newClient(t *testing.T, url string, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		BaseURL: url,
		HTTP:    &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		Token:   func() string { return "read-token" },
		Breaker: shared.NewBreaker(shared.BreakerConfig{Name: "test"}),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFetchRetries(t *testing.T) {
	t.Parallel()
	const d = 2 * time.Second
	tests := []struct {
		name         string
		answers      []answer
		wantKind     Kind
		wantAttempts int
		wantWaits    []time.Duration
		wantCategory shared.Category
		wantFailures int // breaker failures after the cycle
	}{
		{"ok at once", statuses(200), KindOK, 1, nil, "", 0},
		{"server error then ok", statuses(503, 200), KindOK, 2, []time.Duration{d}, "", 0},
		{"two server errors then ok", statuses(500, 503, 200), KindOK, 3, []time.Duration{d, d}, "", 0},
		{"server errors exhaust the retries", statuses(500), KindUnavailable, 3, []time.Duration{d, d}, shared.CategoryServer, 1},
		{"404 NO_DATA is the empty state at once", statuses(404), KindNoData, 1, nil, shared.CategoryNotFound, 0},
		{"401 asks for the token at once", statuses(401), KindUnauthorized, 1, nil, shared.CategoryAuth, 0},
		{"400 is not retried", statuses(400), KindUnavailable, 1, nil, shared.CategoryValidation, 1},
		{"unknown status is retried", statuses(418, 418, 200), KindOK, 3, []time.Duration{d, d}, "", 0},
		{"429 without Retry-After waits the retry delay", statuses(429, 200), KindOK, 2, []time.Duration{d}, "", 0},
		{"429 waits its longer Retry-After", []answer{{429, "7"}, {200, ""}}, KindOK, 2, []time.Duration{7 * time.Second}, "", 0},
		{"429 with a shorter Retry-After waits the retry delay", []answer{{429, "1"}, {200, ""}}, KindOK, 2, []time.Duration{d}, "", 0},
		{"429 keeps being limited", []answer{{429, "5"}}, KindUnavailable, 3, []time.Duration{5 * time.Second, 5 * time.Second}, shared.CategoryRateLimited, 1},
		{"429 beyond the cycle ends it", []answer{{429, "120"}}, KindUnavailable, 1, nil, shared.CategoryRateLimited, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &script{answers: tt.answers}
			url := serve(t, s)
			synctest.Test(t, func(t *testing.T) {
				c := newClient(t, url, nil)
				var events []RetryEvent
				start := time.Now()
				res := c.Fetch(context.Background(), Request{OnRetry: func(e RetryEvent) { events = append(events, e) }})
				took := time.Since(start)
				if got, want := res.Kind, tt.wantKind; got != want {
					t.Fatalf("kind = %v, want %v (err %v)", got, want, res.Err)
				}
				if got, want := res.Attempts, tt.wantAttempts; got != want {
					t.Errorf("attempts = %d, want %d", got, want)
				}
				if got, want := int(s.hits.Load()), tt.wantAttempts; got != want {
					t.Errorf("server hits = %d, want %d", got, want)
				}
				var total time.Duration
				for _, w := range tt.wantWaits {
					total += w
				}
				if got, want := took, total; got != want {
					t.Errorf("the cycle took %v, want %v (waits %v)", got, want, tt.wantWaits)
				}
				if got, want := len(events), len(tt.wantWaits); got != want {
					t.Fatalf("retry events = %d, want %d", got, want)
				}
				for i, e := range events {
					if got, want := e.Attempt, i+1; got != want {
						t.Errorf("event %d attempt = %d, want %d", i, got, want)
					}
					if got, want := e.Delay, tt.wantWaits[i]; got != want {
						t.Errorf("event %d delay = %v, want %v", i, got, want)
					}
				}
				if got, want := res.Category, tt.wantCategory; got != want {
					t.Errorf("category = %q, want %q", got, want)
				}
				if got, want := c.Breaker().Failures(), tt.wantFailures; got != want {
					t.Errorf("breaker failures = %d, want %d", got, want)
				}
				if tt.wantKind == KindOK {
					if res.Data == nil || len(res.Data.Meters) != 1 || res.Data.Meters[0].PercentUsed != 42 {
						t.Errorf("data = %+v, want the scripted usage", res.Data)
					}
				}
			})
		})
	}
}

// The client has no retry rule of its own: a status is retried exactly
// when its category is Retryable.
func TestRetriedExactlyWhenRetryable(t *testing.T) {
	t.Parallel()
	for _, status := range []int{400, 401, 403, 404, 405, 408, 410, 413, 415, 418, 422, 429, 500, 502, 503, 504, 507} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			s := &script{answers: statuses(status)}
			url := serve(t, s)
			synctest.Test(t, func(t *testing.T) {
				res := newClient(t, url, nil).Fetch(context.Background(), Request{})
				want := 1
				if shared.Classify(status, nil).Retryable() {
					want = 1 + DefaultRetries
				}
				if got := res.Attempts; got != want {
					t.Errorf("attempts for %d (%s) = %d, want %d", status, shared.Classify(status, nil), got, want)
				}
			})
		})
	}
}

func TestFetchSendsTokenAndAccount(t *testing.T) {
	t.Parallel()
	s := &script{answers: statuses(200)}
	url := serve(t, s)
	c := newClient(t, url, nil)

	res := c.Fetch(context.Background(), Request{Account: "work@example.com"})
	if res.Kind != KindOK {
		t.Fatalf("kind = %v (%v)", res.Kind, res.Err)
	}
	res = c.Fetch(context.Background(), Request{Token: "from-form"})
	if res.Kind != KindOK {
		t.Fatalf("kind = %v (%v)", res.Kind, res.Err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if got, want := s.auth[0], "Bearer read-token"; got != want {
		t.Errorf("authorization = %q, want %q", got, want)
	}
	if got, want := s.queries[0], "account=work%40example.com"; got != want {
		t.Errorf("query = %q, want %q", got, want)
	}
	if got, want := s.auth[1], "Bearer from-form"; got != want {
		t.Errorf("authorization with a request token = %q, want %q", got, want)
	}
}

func TestFetchNetworkErrorIsRetried(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // connection refused from now on

	synctest.Test(t, func(t *testing.T) {
		c := newClient(t, url, func(cfg *Config) { cfg.RetryDelay = 300 * time.Millisecond })
		start := time.Now()
		res := c.Fetch(context.Background(), Request{})
		if got, want := res.Kind, KindUnavailable; got != want {
			t.Fatalf("kind = %v, want %v", got, want)
		}
		if got, want := res.Category, shared.CategoryNetwork; got != want {
			t.Errorf("category = %q, want %q (err %v)", got, want, res.Err)
		}
		if got, want := res.Attempts, 3; got != want {
			t.Errorf("attempts = %d, want %d", got, want)
		}
		if got, want := time.Since(start), 600*time.Millisecond; got != want {
			t.Errorf("the cycle took %v, want %v (two 300 ms waits)", got, want)
		}
	})
}

func TestFetchBadBodyIsServerError(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>proxy error</html>"))
	}))
	synctest.Test(t, func(t *testing.T) {
		res := newClient(t, url, nil).Fetch(context.Background(), Request{})
		if got, want := res.Kind, KindUnavailable; got != want {
			t.Fatalf("kind = %v, want %v", got, want)
		}
		if got, want := res.Category, shared.CategoryServer; got != want {
			t.Errorf("category = %q, want %q", got, want)
		}
		if got, want := hits.Load(), int32(3); got != want {
			t.Errorf("hits = %d, want %d", got, want)
		}
	})
}

func TestBreakerAcrossCycles(t *testing.T) {
	t.Parallel()
	s := &script{answers: statuses(500)}
	url := serve(t, s)
	synctest.Test(t, func(t *testing.T) {
		var transitions []shared.Transition
		br := shared.NewBreaker(shared.BreakerConfig{Name: "test", OnTransition: func(tr shared.Transition) {
			transitions = append(transitions, tr)
		}})
		c := newClient(t, url, func(cfg *Config) { cfg.Breaker = br })

		for cycle := 1; cycle <= 3; cycle++ {
			res := c.Fetch(context.Background(), Request{})
			if got, want := res.Kind, KindUnavailable; got != want {
				t.Fatalf("cycle %d: kind = %v, want %v", cycle, got, want)
			}
			wantState := shared.StateClosed
			if cycle == 3 {
				wantState = shared.StateOpen
			}
			if got := br.State(); got != wantState {
				t.Fatalf("cycle %d: breaker = %v, want %v", cycle, got, wantState)
			}
		}
		if got, want := int(s.hits.Load()), 9; got != want {
			t.Fatalf("hits after 3 cycles = %d, want %d", got, want)
		}

		// Open: the next automatic cycle sends nothing.
		res := c.Fetch(context.Background(), Request{})
		if got, want := res.Kind, KindBreakerOpen; got != want {
			t.Fatalf("kind while open = %v, want %v", got, want)
		}
		if got, want := res.RetryIn, 60*time.Second; got != want {
			t.Errorf("retryIn = %v, want %v", got, want)
		}
		if got, want := int(s.hits.Load()), 9; got != want {
			t.Errorf("hits while open = %d, want %d", got, want)
		}

		// 59 s later it is still open.
		time.Sleep(59 * time.Second)
		if res := c.Fetch(context.Background(), Request{}); res.Kind != KindBreakerOpen || res.RetryIn != time.Second {
			t.Errorf("after 59 s: kind %v retryIn %v, want BREAKER_OPEN 1s", res.Kind, res.RetryIn)
		}

		// After the cooldown one probe goes through; it fails (3 attempts)
		// and the breaker opens again.
		time.Sleep(time.Second)
		res = c.Fetch(context.Background(), Request{})
		if got, want := res.Kind, KindUnavailable; got != want {
			t.Fatalf("probe kind = %v, want %v", got, want)
		}
		if got, want := int(s.hits.Load()), 12; got != want {
			t.Errorf("hits after the probe = %d, want %d", got, want)
		}
		if got, want := br.State(), shared.StateOpen; got != want {
			t.Fatalf("breaker after a failed probe = %v, want %v", got, want)
		}

		// A manual refresh bypasses the open breaker; its success closes it.
		s.set(answer{status: 200})
		res = c.Fetch(context.Background(), Request{Manual: true})
		if got, want := res.Kind, KindOK; got != want {
			t.Fatalf("manual kind = %v, want %v (%v)", got, want, res.Err)
		}
		if got, want := br.State(), shared.StateClosed; got != want {
			t.Errorf("breaker after a manual success = %v, want %v", got, want)
		}
		var path []string
		for _, tr := range transitions {
			path = append(path, tr.From.String()+">"+tr.To.String())
		}
		want := []string{"CLOSED>OPEN", "OPEN>HALF_OPEN", "HALF_OPEN>OPEN", "OPEN>CLOSED"}
		if len(path) != len(want) {
			t.Fatalf("transitions = %v, want %v", path, want)
		}
		for i := range want {
			if path[i] != want[i] {
				t.Errorf("transition %d = %s, want %s", i, path[i], want[i])
			}
		}
	})
}

func TestManualFailureWhileOpenKeepsItOpen(t *testing.T) {
	t.Parallel()
	s := &script{answers: statuses(503)}
	url := serve(t, s)
	synctest.Test(t, func(t *testing.T) {
		c := newClient(t, url, func(cfg *Config) {
			cfg.Breaker = shared.NewBreaker(shared.BreakerConfig{Threshold: 1, Cooldown: 5 * time.Second})
		})
		c.Fetch(context.Background(), Request{})
		if got, want := c.Breaker().State(), shared.StateOpen; got != want {
			t.Fatalf("state = %v, want %v (threshold 1)", got, want)
		}
		before := s.hits.Load()
		res := c.Fetch(context.Background(), Request{Manual: true})
		if got, want := s.hits.Load()-before, int32(3); got != want {
			t.Errorf("manual attempts while open = %d, want %d", got, want)
		}
		if res.Kind != KindUnavailable || c.Breaker().State() != shared.StateOpen {
			t.Errorf("after a failed manual try: kind %v state %v, want UNAVAILABLE OPEN", res.Kind, c.Breaker().State())
		}
		if got, want := c.Breaker().RetryIn(), 5*time.Second; got != want {
			t.Errorf("retryIn = %v, want %v (the cooldown restarts)", got, want)
		}
	})
}

// fetchUntilWaiting starts a cycle and returns once it waits for its first
// retry, with a channel for its result.
func fetchUntilWaiting(t *testing.T, c *Client, ctx context.Context) <-chan Result {
	t.Helper()
	out := make(chan Result, 1)
	go func() { out <- c.Fetch(ctx, Request{}) }()
	synctest.Wait() // the only timer left is the retry wait
	return out
}

func TestFetchStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	s := &script{answers: statuses(500)}
	url := serve(t, s)
	synctest.Test(t, func(t *testing.T) {
		c := newClient(t, url, nil)
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		out := fetchUntilWaiting(t, c, ctx)
		cancel() // the widget is dismounted while waiting
		res := <-out
		if got, want := res.Kind, KindUnavailable; got != want {
			t.Fatalf("kind = %v, want %v", got, want)
		}
		if got := time.Since(start); got != 0 {
			t.Errorf("the cancelled cycle took %v, want 0: it must not finish its wait", got)
		}
		if got, want := s.hits.Load(), int32(1); got != want {
			t.Errorf("hits = %d, want %d: no attempt after the context ended", got, want)
		}
		if got, want := c.Breaker().Failures(), 0; got != want {
			t.Errorf("breaker failures = %d, want %d: a cancelled cycle says nothing about the server", got, want)
		}
	})
}

func TestCancelledProbeReleasesTheBreaker(t *testing.T) {
	t.Parallel()
	s := &script{answers: statuses(500)}
	url := serve(t, s)
	synctest.Test(t, func(t *testing.T) {
		br := shared.NewBreaker(shared.BreakerConfig{Threshold: 1, Cooldown: time.Second})
		c := newClient(t, url, func(cfg *Config) { cfg.Breaker = br })
		c.Fetch(context.Background(), Request{}) // opens
		time.Sleep(time.Second)                  // half-open: the next cycle is the probe

		ctx, cancel := context.WithCancel(context.Background())
		out := fetchUntilWaiting(t, c, ctx)
		cancel()
		<-out
		if got, want := br.State(), shared.StateOpen; got != want {
			t.Fatalf("after a cancelled probe: %v, want %v (the probe reported)", got, want)
		}
		time.Sleep(time.Second)
		s.set(answer{status: 200})
		if res := c.Fetch(context.Background(), Request{}); res.Kind != KindOK {
			t.Fatalf("the next probe = %v, want OK: the breaker must not wait for the cancelled one", res.Kind)
		}
	})
}

func TestNewNeedsBaseURL(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a base URL succeeded")
	}
}
