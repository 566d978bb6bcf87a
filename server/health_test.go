package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

func getHealth(t *testing.T, e *env, hdr ...string) (int, shared.HealthResponse) {
	t.Helper()
	r := e.do(http.MethodGet, shared.PathHealth, "", hdr...)
	var h shared.HealthResponse
	r.decode(t, &h)
	return r.status, h
}

var warmOnce sync.Once

// warmFasthttp starts outside any synctest bubble the process-wide
// goroutines that fasthttp (its Date header clock) and fiber's limiter (its
// timestamp) start on first use: one started inside a bubble would belong
// to it, and the bubble could never end.
func warmFasthttp() {
	warmOnce.Do(func() {
		utils.StartTimeStampUpdater()
		app := fiber.New(fiber.Config{DisableStartupMessage: true})
		app.Get("/", func(c *fiber.Ctx) error { return nil })
		if res, err := app.Test(httptest.NewRequest(http.MethodGet, "/", nil), -1); err == nil {
			res.Body.Close()
		}
	})
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
			if h.VersionCount != 1 || !h.Storage.Writable || h.Storage.Status != "ok" || h.Storage.Breaker != "CLOSED" {
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

// TestHealthDetailNeedsToken: the public answer keeps status, ages, counts
// and categories; the data directory, free bytes and messages (paths, page
// titles) go only to a request with the read or the metrics token.
func TestHealthDetailNeedsToken(t *testing.T) {
	t.Parallel()
	const metricsToken = "metrics-token-0123456789abcdef"
	e := newEnv(t, withConfig(func(c *Config) { c.MetricsToken = metricsToken }))
	e.mustPost(snap("default", t0, 5))
	const secret = "redirected to /Users/alice/Library/claude-profile"
	if r := e.do(http.MethodPost, shared.PathScraperStatus,
		`{"at":"2026-11-28T13:50:00Z","ok":false,"category":"NOT_LOGGED_IN","message":"`+secret+`"}`,
		"Content-Type", "application/json", shared.HeaderAPIKey, testKey); r.status != http.StatusNoContent {
		t.Fatalf("status POST = %d %s", r.status, r.body)
	}
	dir := e.st.Status().Dir
	cases := []struct {
		name   string
		hdr    []string
		detail bool
	}{
		{"no token", nil, false},
		{"read token", []string{"Authorization", "Bearer " + testToken}, true},
		{"metrics token", []string{"Authorization", "Bearer " + metricsToken}, true},
		{"write key in X-API-Key is not a health token", []string{shared.HeaderAPIKey, testKey}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(http.MethodGet, shared.PathHealth, "", tc.hdr...)
			if r.status != http.StatusOK {
				t.Fatalf("health = %d %s", r.status, r.body)
			}
			var h shared.HealthResponse
			r.decode(t, &h)
			body := string(r.body)
			if got := strings.Contains(body, dir) || strings.Contains(body, secret) || strings.Contains(body, "freeBytes"); got != tc.detail {
				t.Errorf("detail shown = %v, want %v: %s", got, tc.detail, body)
			}
			if h.Scraper.LastError == nil || h.Scraper.LastError.Category != "NOT_LOGGED_IN" ||
				h.VersionCount != 1 || h.LatestDataAge == nil || !strings.Contains(strings.Join(h.Reasons, "; "), "NOT_LOGGED_IN") {
				t.Errorf("public fields missing: %+v", h)
			}
			if tc.detail && (h.Storage.Dir != dir || h.Storage.FreeBytes == nil || h.Scraper.LastError.Message != secret) {
				t.Errorf("detail = dir %q free %v message %q", h.Storage.Dir, h.Storage.FreeBytes, h.Scraper.LastError.Message)
			}
		})
	}
	// A token that matches nothing is a failed authentication, not a
	// quiet public answer: health must not tell a guess from a hit for free.
	wantError(t, e.do(http.MethodGet, shared.PathHealth, "", "Authorization", "Bearer wrong-token-0123456789"),
		http.StatusUnauthorized, shared.CodeAuthInvalidKey)
}

// TestHealthScraperProblemDegrades: the newest report saying the scraper
// cannot read the page makes health degraded at once, with the category in
// reasons, while the data is still fresh.
func TestHealthScraperProblemDegrades(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustPost(snap("default", t0, 5))
	report := func(body string) {
		t.Helper()
		if r := e.do(http.MethodPost, shared.PathScraperStatus, body,
			"Content-Type", "application/json", shared.HeaderAPIKey, testKey); r.status != http.StatusNoContent {
			t.Fatalf("status POST = %d %s", r.status, r.body)
		}
	}
	report(`{"at":"2026-11-28T13:50:00Z","ok":false,"category":"NOT_LOGGED_IN","message":"log in"}`)
	code, h := getHealth(t, e)
	if code != http.StatusOK || h.Status != shared.HealthDegraded || !strings.Contains(strings.Join(h.Reasons, "; "), "NOT_LOGGED_IN") {
		t.Errorf("health with a NOT_LOGGED_IN report = %d %s %q, want 200 degraded naming NOT_LOGGED_IN", code, h.Status, h.Reasons)
	}
	report(`{"at":"2026-11-28T13:51:00Z","ok":true}`)
	if code, h := getHealth(t, e); code != http.StatusOK || h.Status != shared.HealthHealthy || h.Scraper.LastError != nil {
		t.Errorf("health after a good report = %d %s %q", code, h.Status, h.Reasons)
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
	code, h := getHealth(t, e, "Authorization", "Bearer "+testToken)
	if code != 503 || h.Status != shared.HealthUnhealthy {
		t.Fatalf("health = %d %s, want 503 unhealthy", code, h.Status)
	}
	if h.Storage.Writable || h.Storage.Status != "error" || !strings.Contains(h.Storage.Error, "permission denied") {
		t.Errorf("storage = %+v", h.Storage)
	}
	if !strings.Contains(strings.Join(h.Reasons, "; "), "storage not writable (STORAGE_PERMISSION_DENIED)") {
		t.Errorf("reasons = %q", h.Reasons)
	}
	if got := metricValue(t, e, "usage_storage_writable"); got != 0 {
		t.Errorf("usage_storage_writable = %v", got)
	}

	fs.set(func(f *faultStore) { f.checkErr = nil })
	if code, h := getHealth(t, e); code != 200 || !h.Storage.Writable {
		t.Errorf("after recovery health = %d %+v", code, h.Storage)
	}
}

// TestHealthAnswersWhileStorageHangs hangs the real store's write check in
// a syscall that never returns (an injected fault: a real disk cannot be
// made to hang on demand). Health answers within its bound from memory; the
// store's stuck-probe rule turns it unhealthy after store.ProbeStuckAfter;
// a check result is reused for healthMaxAge.
func TestHealthAnswersWhileStorageHangs(t *testing.T) {
	t.Parallel()
	warmFasthttp()
	synctest.Test(t, func(t *testing.T) {
		e, ffs := newFSEnv(t)
		e.mustPost(snap("default", t0, 5))
		release := make(chan struct{})
		var once sync.Once
		unblock := func() { once.Do(func() { close(release) }) }
		t.Cleanup(unblock) // before the store's Close, which waits for the check
		hang := ffs.Add(&testutil.Fault{Op: "CreateTemp", Path: ".probe-", Block: release, Times: 1})

		// Within healthMaxAge of the save's check, health reuses it.
		time.Sleep(healthMaxAge)
		probes := ffs.Count("CreateTemp", ".probe-")
		if code, _ := getHealth(t, e); code != http.StatusOK {
			t.Fatalf("health = %d", code)
		}
		if got := ffs.Count("CreateTemp", ".probe-") - probes; got != 0 {
			t.Errorf("health %v after a check ran %d new checks, want 0", healthMaxAge, got)
		}

		time.Sleep(time.Nanosecond)
		ask := func() (time.Duration, int, shared.HealthResponse) {
			start := time.Now()
			code, h := getHealth(t, e, "Authorization", "Bearer "+testToken)
			return time.Since(start), code, h
		}
		d, code, h := ask()
		<-hang.Entered
		if d > 100*time.Millisecond {
			t.Errorf("health took %v while the check hangs, want < 100 ms", d)
		}
		if code != http.StatusOK || !h.Storage.Writable {
			t.Errorf("a check hanging for %v: health = %d %+v, want the last result (writable)", d, code, h.Storage)
		}

		time.Sleep(store.ProbeStuckAfter)
		d, code, h = ask()
		if d > 100*time.Millisecond {
			t.Errorf("health took %v while the check hangs, want < 100 ms", d)
		}
		if code != http.StatusServiceUnavailable || h.Storage.Writable || !strings.Contains(h.Storage.Error, "has not answered for 1s") {
			t.Errorf("with the check stuck past %v health = %d %+v", store.ProbeStuckAfter, code, h.Storage)
		}
		if got, want := ffs.Count("CreateTemp", ".probe-")-probes, 1; got != want {
			t.Errorf("checks started = %d, want %d (later requests join the hung one)", got, want)
		}

		unblock()
		synctest.Wait()
		if code, h := getHealth(t, e); code != http.StatusOK || !h.Storage.Writable {
			t.Errorf("after the disk answered health = %d %+v", code, h.Storage)
		}
	})
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
