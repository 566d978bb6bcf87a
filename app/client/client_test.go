//go:build !(js && wasm)

package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

// fakeTime is a clock whose sleeps advance it at once and are recorded.
type fakeTime struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeTime() *fakeTime {
	return &fakeTime{now: time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC)}
}

func (f *fakeTime) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeTime) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *fakeTime) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	f.sleeps = append(f.sleeps, d)
	f.now = f.now.Add(d)
	f.mu.Unlock()
	return nil
}

func (f *fakeTime) Sleeps() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

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

// script answers each request with the next status (the last repeats);
// 200 sends a usage body, other statuses the error body of code.
type script struct {
	mu       sync.Mutex
	statuses []int
	hits     atomic.Int32
	auth     []string
	queries  []string
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(s.hits.Add(1))
	s.mu.Lock()
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	s.queries = append(s.queries, r.URL.RawQuery)
	st := s.statuses[min(n, len(s.statuses))-1]
	s.mu.Unlock()
	if r.URL.Path != shared.PathUsage {
		http.Error(w, "wrong path "+r.URL.Path, http.StatusTeapot)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if st == http.StatusOK {
		account := r.URL.Query().Get("account")
		if account == "" {
			account = "default"
		}
		_ = json.NewEncoder(w).Encode(usageBody(account))
		return
	}
	code := map[int]shared.Code{
		400: shared.CodeInvalidQuery, 401: shared.CodeAuthInvalidKey, 404: shared.CodeNoData,
		429: shared.CodeRateLimited, 500: shared.CodeInternal, 503: shared.CodeStorageUnavailable,
	}[st]
	w.WriteHeader(st)
	_ = json.NewEncoder(w).Encode(shared.ErrorBody{ErrorCode: code, Message: "scripted", Category: code.Info().Category})
}

func newClient(t *testing.T, url string, ft *fakeTime, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		BaseURL: url,
		Sleep:   ft.Sleep,
		Now:     ft.Now,
		Token:   func() string { return "read-token" },
		Breaker: shared.NewBreaker(shared.BreakerConfig{Name: "test", Now: ft.Now}),
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
	tests := []struct {
		name         string
		statuses     []int
		wantKind     Kind
		wantAttempts int
		wantSleeps   []time.Duration
		wantCategory shared.Category
		wantFailures int // breaker failures after the cycle
	}{
		{"ok at once", []int{200}, KindOK, 1, nil, "", 0},
		{"server error then ok", []int{503, 200}, KindOK, 2, []time.Duration{2 * time.Second}, "", 0},
		{"two server errors then ok", []int{500, 503, 200}, KindOK, 3, []time.Duration{2 * time.Second, 2 * time.Second}, "", 0},
		{"server errors exhaust the retries", []int{500}, KindUnavailable, 3, []time.Duration{2 * time.Second, 2 * time.Second}, shared.CategoryServer, 1},
		{"404 NO_DATA is the empty state at once", []int{404}, KindNoData, 1, nil, shared.CategoryNotFound, 0},
		{"401 asks for the token at once", []int{401}, KindUnauthorized, 1, nil, shared.CategoryAuth, 0},
		{"400 is not retried", []int{400}, KindUnavailable, 1, nil, shared.CategoryValidation, 1},
		{"429 is not retried by the widget", []int{429}, KindUnavailable, 1, nil, shared.CategoryRateLimited, 1},
		{"unknown status is retried", []int{418, 418, 200}, KindOK, 3, []time.Duration{2 * time.Second, 2 * time.Second}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &script{statuses: tt.statuses}
			srv := httptest.NewServer(s)
			t.Cleanup(srv.Close)
			ft := newFakeTime()
			c := newClient(t, srv.URL, ft, nil)
			var events []RetryEvent
			res := c.Fetch(context.Background(), Request{OnRetry: func(e RetryEvent) { events = append(events, e) }})
			if got, want := res.Kind, tt.wantKind; got != want {
				t.Fatalf("kind = %v, want %v (err %v)", got, want, res.Err)
			}
			if got, want := res.Attempts, tt.wantAttempts; got != want {
				t.Errorf("attempts = %d, want %d", got, want)
			}
			if got, want := int(s.hits.Load()), tt.wantAttempts; got != want {
				t.Errorf("server hits = %d, want %d", got, want)
			}
			if got, want := len(ft.Sleeps()), len(tt.wantSleeps); got != want {
				t.Fatalf("sleeps = %v, want %v", ft.Sleeps(), tt.wantSleeps)
			}
			for i, d := range ft.Sleeps() {
				if d != tt.wantSleeps[i] {
					t.Errorf("sleep %d = %v, want %v", i, d, tt.wantSleeps[i])
				}
			}
			if got, want := len(events), len(tt.wantSleeps); got != want {
				t.Errorf("retry events = %d, want %d", got, want)
			}
			for i, e := range events {
				if got, want := e.Attempt, i+1; got != want {
					t.Errorf("event %d attempt = %d, want %d", i, got, want)
				}
				if got, want := e.Delay, 2*time.Second; got != want {
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
	}
}

func TestFetchSendsTokenAndAccount(t *testing.T) {
	t.Parallel()
	s := &script{statuses: []int{200}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, newFakeTime(), nil)

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

	ft := newFakeTime()
	c := newClient(t, url, ft, func(cfg *Config) { cfg.RetryDelay = 300 * time.Millisecond })
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
	want := []time.Duration{300 * time.Millisecond, 300 * time.Millisecond}
	if got := ft.Sleeps(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("sleeps = %v, want %v", got, want)
	}
}

func TestFetchBadBodyIsServerError(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>proxy error</html>"))
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, newFakeTime(), nil)
	res := c.Fetch(context.Background(), Request{})
	if got, want := res.Kind, KindUnavailable; got != want {
		t.Fatalf("kind = %v, want %v", got, want)
	}
	if got, want := res.Category, shared.CategoryServer; got != want {
		t.Errorf("category = %q, want %q", got, want)
	}
	if got, want := hits.Load(), int32(3); got != want {
		t.Errorf("hits = %d, want %d", got, want)
	}
}

func TestBreakerAcrossCycles(t *testing.T) {
	t.Parallel()
	s := &script{statuses: []int{500}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	ft := newFakeTime()
	var transitions []shared.Transition
	var mu sync.Mutex
	br := shared.NewBreaker(shared.BreakerConfig{Name: "test", Now: ft.Now, OnTransition: func(tr shared.Transition) {
		mu.Lock()
		transitions = append(transitions, tr)
		mu.Unlock()
	}})
	c := newClient(t, srv.URL, ft, func(cfg *Config) { cfg.Breaker = br })

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
	ft.Advance(59 * time.Second)
	if res := c.Fetch(context.Background(), Request{}); res.Kind != KindBreakerOpen || res.RetryIn != time.Second {
		t.Errorf("after 59 s: kind %v retryIn %v, want BREAKER_OPEN 1s", res.Kind, res.RetryIn)
	}

	// After the cooldown one probe goes through; it fails (3 attempts)
	// and the breaker opens again.
	ft.Advance(time.Second)
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
	s.mu.Lock()
	s.statuses = []int{200}
	s.mu.Unlock()
	res = c.Fetch(context.Background(), Request{Manual: true})
	if got, want := res.Kind, KindOK; got != want {
		t.Fatalf("manual kind = %v, want %v (%v)", got, want, res.Err)
	}
	if got, want := br.State(), shared.StateClosed; got != want {
		t.Errorf("breaker after a manual success = %v, want %v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
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
}

func TestManualFailureWhileOpenKeepsItOpen(t *testing.T) {
	t.Parallel()
	s := &script{statuses: []int{503}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	ft := newFakeTime()
	c := newClient(t, srv.URL, ft, func(cfg *Config) {
		cfg.Breaker = shared.NewBreaker(shared.BreakerConfig{Threshold: 1, Cooldown: 5 * time.Second, Now: ft.Now})
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
}

func TestFetchStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	s := &script{statuses: []int{500}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	c := newClient(t, srv.URL, newFakeTime(), func(cfg *Config) {
		cfg.Sleep = func(ctx context.Context, d time.Duration) error {
			cancel() // the widget is dismounted while waiting
			return ctx.Err()
		}
	})
	res := c.Fetch(ctx, Request{})
	if got, want := res.Kind, KindUnavailable; got != want {
		t.Fatalf("kind = %v, want %v", got, want)
	}
	if got, want := s.hits.Load(), int32(1); got != want {
		t.Errorf("hits = %d, want %d: no attempt after the context ended", got, want)
	}
	if got, want := c.Breaker().Failures(), 0; got != want {
		t.Errorf("breaker failures = %d, want %d: a cancelled cycle says nothing about the server", got, want)
	}
}

func TestCancelledProbeReleasesTheBreaker(t *testing.T) {
	t.Parallel()
	s := &script{statuses: []int{500}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	ft := newFakeTime()
	br := shared.NewBreaker(shared.BreakerConfig{Threshold: 1, Cooldown: time.Second, Now: ft.Now})
	c := newClient(t, srv.URL, ft, func(cfg *Config) { cfg.Breaker = br })
	c.Fetch(context.Background(), Request{}) // opens
	ft.Advance(time.Second)                  // half-open: the next cycle is the probe

	ctx, cancel := context.WithCancel(context.Background())
	c.cfg.Sleep = func(ctx context.Context, d time.Duration) error { cancel(); return ctx.Err() }
	c.Fetch(ctx, Request{})
	if got, want := br.State(), shared.StateOpen; got != want {
		t.Fatalf("after a cancelled probe: %v, want %v (the probe reported)", got, want)
	}
	ft.Advance(time.Second)
	c.cfg.Sleep = ft.Sleep
	s.mu.Lock()
	s.statuses = []int{200}
	s.mu.Unlock()
	if res := c.Fetch(context.Background(), Request{}); res.Kind != KindOK {
		t.Fatalf("the next probe = %v, want OK: the breaker must not wait for the cancelled one", res.Kind)
	}
}

func TestRealSleepHonoursContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep = %v, want nil", err)
	}
}

func TestNewNeedsBaseURL(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a base URL succeeded")
	}
}
