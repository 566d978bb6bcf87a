package server

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

func getHealth(t *testing.T, e *env) (int, shared.HealthResponse) {
	t.Helper()
	r := e.do(http.MethodGet, shared.PathHealth, "")
	var h shared.HealthResponse
	r.decode(t, &h)
	return r.status, h
}

func TestHealthThresholds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustPost(snap("default", t0, 5))
	tests := []struct {
		age    time.Duration
		status string
		code   int
	}{
		{0, shared.HealthHealthy, 200},
		{9*time.Minute + 59*time.Second, shared.HealthHealthy, 200},
		{10*time.Minute + 1*time.Second, shared.HealthDegraded, 200},
		{29*time.Minute + 59*time.Second, shared.HealthDegraded, 200},
		{30*time.Minute + 1*time.Second, shared.HealthUnhealthy, 503},
		{48 * time.Hour, shared.HealthUnhealthy, 503},
	}
	for _, tt := range tests {
		t.Run(tt.age.String(), func(t *testing.T) {
			e.clock.Set(t0.Add(tt.age))
			code, h := getHealth(t, e)
			if code != tt.code || h.Status != tt.status {
				t.Fatalf("health = %d %s, want %d %s (reasons %v)", code, h.Status, tt.code, tt.status, h.Reasons)
			}
			if h.LatestDataAge == nil || *h.LatestDataAge != int64(tt.age/time.Second) {
				t.Errorf("latestDataAge = %v, want %d", h.LatestDataAge, int64(tt.age/time.Second))
			}
			if h.VersionCount != 1 || !h.Storage.Writable || h.Storage.Status != "ok" || h.Storage.Dir == "" || h.Storage.Breaker != "CLOSED" {
				t.Errorf("health body = %+v", h)
			}
			if !h.Timestamp.Equal(t0.Add(tt.age)) {
				t.Errorf("timestamp = %v, want the injected clock", h.Timestamp)
			}
			if tt.status != shared.HealthHealthy && len(h.Reasons) == 0 {
				t.Error("no reason given for a non-healthy status")
			}
			head := e.do(http.MethodHead, shared.PathHealth, "")
			if head.status != tt.code || len(head.body) != 0 {
				t.Errorf("HEAD = %d with %d bytes, want %d and no body", head.status, len(head.body), tt.code)
			}
		})
	}
}

func TestHealthNoData(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do(http.MethodGet, shared.PathHealth, "")
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", r.status)
	}
	if !strings.Contains(string(r.body), `"latestDataAge":null`) {
		t.Errorf("latestDataAge is not null: %s", r.body)
	}
	var h shared.HealthResponse
	r.decode(t, &h)
	if h.Status != shared.HealthUnhealthy || h.VersionCount != 0 || h.Scraper.LastSeen != nil {
		t.Errorf("health = %+v", h)
	}
	if r.header.Get(shared.HeaderRequestID) == "" {
		t.Error("no X-Request-ID on health")
	}
}

func TestHealthSeesPostAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustPost(snap("default", t0, 5))
	e.mustPost(snap("work", t0.Add(-time.Minute), 5))
	code, h := getHealth(t, e)
	if code != 200 || h.VersionCount != 2 || h.LatestDataAge == nil || *h.LatestDataAge != 0 {
		t.Errorf("health after POST = %d %+v", code, h)
	}
}

func TestHealthUnwritableStorage(t *testing.T) {
	t.Parallel()
	fs := &faultStore{}
	e := newEnv(t, wrapStore(func(st storeT) storeT { fs.Store = st; return fs }))
	e.mustPost(snap("default", t0, 5))
	fs.set(func(f *faultStore) {
		f.checkErr = &shared.Error{Code: shared.CodeStoragePermissionDenied,
			Message: "storage check: permission denied in /data (mode dr-xr-xr-x, owner 0:0)"}
	})
	e.srv.health.check(context.Background())
	code, h := getHealth(t, e)
	if code != 503 || h.Status != shared.HealthUnhealthy {
		t.Fatalf("health = %d %s, want 503 unhealthy", code, h.Status)
	}
	if h.Storage.Writable || h.Storage.Status != "error" || !strings.Contains(h.Storage.Error, "permission denied") {
		t.Errorf("storage = %+v", h.Storage)
	}
	if got := metricValue(t, e, "usage_storage_writable"); got != 0 {
		t.Errorf("usage_storage_writable = %v", got)
	}

	fs.set(func(f *faultStore) { f.checkErr = nil })
	e.srv.health.check(context.Background())
	if code, h := getHealth(t, e); code != 200 || !h.Storage.Writable {
		t.Errorf("after recovery health = %d %+v", code, h.Storage)
	}
}

func TestHealthCheckIsBounded(t *testing.T) {
	t.Parallel()
	fs := &faultStore{checkBlock: make(chan struct{})}
	e := newEnv(t, wrapStore(func(st storeT) storeT { fs.Store = st; return fs }),
		withConfig(func(c *Config) { c.HealthCheckTimeout = time.Millisecond }))
	t.Cleanup(func() { close(fs.checkBlock) })
	e.mustPost(snap("default", t0, 5))
	// The store honours ctx: the probe ends at its deadline and counts as
	// a failure.
	e.srv.health.check(context.Background())
	code, h := getHealth(t, e)
	if code != 503 || h.Storage.Writable || !strings.Contains(h.Storage.Error, "timed out") {
		t.Errorf("health = %d %+v", code, h.Storage)
	}
}

func TestHealthAnswersWhileStorageCheckHangs(t *testing.T) {
	t.Parallel()
	mono := &monoClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	fs := &faultStore{checkBlock: make(chan struct{}), ignoreCtx: true, checkEntered: make(chan struct{}, 1)}
	e := newEnv(t, wrapStore(func(st storeT) storeT { fs.Store = st; return fs }),
		withConfig(func(c *Config) { c.HealthCheckTimeout = 2 * time.Second; c.mono = mono.Now }))
	var once sync.Once
	release := func() { once.Do(func() { close(fs.checkBlock) }) }
	t.Cleanup(release) // runs before the server's Close, which waits for the checker
	e.mustPost(snap("default", t0, 5))

	select {
	case <-fs.checkEntered:
	case <-time.After(10 * time.Second):
		t.Fatal("the background storage check never started")
	}
	// The check is stuck in a syscall that ignores its context. Health must
	// still answer from the cache; a handler that probed the disk itself
	// would never return.
	ask := func() (time.Duration, int, shared.HealthResponse) {
		type result struct {
			code int
			h    shared.HealthResponse
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			code, h := getHealth(t, e)
			done <- result{code, h}
		}()
		select {
		case r := <-done:
			return time.Since(start), r.code, r.h
		case <-time.After(2 * time.Second):
			t.Fatal("health did not answer while the storage check hangs")
		}
		return 0, 0, shared.HealthResponse{}
	}
	d, code, h := ask()
	t.Logf("health answered in %v while the check hangs", d)
	if code != 200 || !h.Storage.Writable {
		t.Errorf("within the check timeout health = %d %+v, want the last result (writable)", code, h.Storage)
	}
	if d > time.Second {
		t.Errorf("health took %v", d)
	}

	mono.Advance(3 * time.Second) // past the 2 s check timeout
	_, code, h = ask()
	if code != 503 || h.Storage.Writable || !strings.Contains(h.Storage.Error, "has not finished after 3s") {
		t.Errorf("with the check stuck past its timeout health = %d %+v", code, h.Storage)
	}
	release()
}

func TestHealthStoreBreaker(t *testing.T) {
	t.Parallel()
	fs := &faultStore{}
	e := newEnv(t, wrapStore(func(st storeT) storeT { fs.Store = st; return fs }))
	e.mustPost(snap("default", t0, 5))
	tests := []struct {
		state   shared.State
		code    int
		status  string
		storage string
	}{
		{shared.StateOpen, 503, shared.HealthUnhealthy, "unavailable"},
		{shared.StateHalfOpen, 200, shared.HealthDegraded, "ok"},
		{shared.StateClosed, 200, shared.HealthHealthy, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.state.String(), func(t *testing.T) {
			st := tt.state
			fs.set(func(f *faultStore) { f.breaker = &st })
			e.srv.health.check(context.Background())
			code, h := getHealth(t, e)
			if code != tt.code || h.Status != tt.status || h.Storage.Status != tt.storage || h.Storage.Breaker != tt.state.String() {
				t.Errorf("health = %d %s storage %+v, want %d %s %s", code, h.Status, h.Storage, tt.code, tt.status, tt.storage)
			}
			if got := metricValue(t, e, "usage_store_breaker_state"); got != float64(tt.state) {
				t.Errorf("usage_store_breaker_state = %v, want %d", got, tt.state)
			}
		})
	}
}
