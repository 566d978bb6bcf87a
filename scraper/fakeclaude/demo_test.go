package fakeclaude

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/claude-usage/widget/scraper/parse"
)

// fakeClock is the demo's injected clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func fetchUsage(t *testing.T, base string) []byte {
	t.Helper()
	page, err := http.Get(UsageURL(base, ""))
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != 200 || !strings.Contains(string(html), "Plan usage limits") {
		t.Fatalf("usage page: status %d", page.StatusCode)
	}
	const marker = `data-org="`
	i := strings.Index(string(html), marker)
	org := string(html)[i+len(marker):]
	org = org[:strings.IndexByte(org, '"')]
	resp, err := http.Get(base + "/api/organizations/" + org + "/usage")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func TestValuesMoveWithTheClock(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clock := &fakeClock{t: time.Date(2026, 11, 28, 12, 30, 0, 0, time.UTC)} // 30 min into the 12:00-17:00 window
	base, err := Start(ctx, "127.0.0.1:0", clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("base URL = %q, want loopback", base)
	}

	read := func() (session, weekly float64, sessionResets time.Time) {
		s, err := parse.ParseAPI(fetchUsage(t, base), clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		ms, _ := s.Meter("session")
		mw, _ := s.Meter("weekly_all")
		return ms.PercentUsed, mw.PercentUsed, *ms.ResetsAt
	}

	s1, w1, r1 := read()
	if got, want := s1, 14.0; got != want { // 5 + 0.1*90
		t.Errorf("session at 12:30 = %g, want %g", got, want)
	}
	if got, want := r1, time.Date(2026, 11, 28, 17, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("session resets = %s, want %s", got, want)
	}

	clock.Set(clock.Now().Add(2 * time.Hour))
	s2, w2, r2 := read()
	if !(s2 > s1) || !(w2 > w1) {
		t.Errorf("after 2 h: session %g→%g, weekly %g→%g; want both rising", s1, s2, w1, w2)
	}
	if !r2.Equal(r1) {
		t.Errorf("session reset moved within a window: %s → %s", r1, r2)
	}

	clock.Set(clock.Now().Add(3 * time.Hour)) // 17:30: a new window
	s3, _, r3 := read()
	if !(s3 < s2) {
		t.Errorf("session after its reset = %g, want below %g", s3, s2)
	}
	if got, want := r3, time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("next session reset = %s, want %s", got, want)
	}

	cancel()
	deadline := time.Now().Add(3 * time.Second)
	for {
		resp, err := http.Get(UsageURL(base, ""))
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("demo still serving 3 s after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestStartRefusesNonLoopback(t *testing.T) {
	tests := []struct{ name, addr string }{
		{"all interfaces", ":8099"},
		{"public address", "8.8.8.8:80"},
		{"no port", "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Start(t.Context(), tt.addr, nil); err == nil || !strings.HasPrefix(err.Error(), "fakeclaude: ") {
				t.Errorf("Start(%q) err = %v, want a fakeclaude error", tt.addr, err)
			}
		})
	}
}

func TestUsageStaysInRange(t *testing.T) {
	start := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	for d := time.Duration(0); d < 8*24*time.Hour; d += 17 * time.Minute {
		u := DemoUsage(start.Add(d))
		for _, p := range []float64{u.Session, u.WeeklyAll, u.Sonnet, u.Opus} {
			if p < 0 || p > 100 {
				t.Fatalf("at +%s a percent is %g", d, p)
			}
		}
		if !u.SessionResets.After(start.Add(d)) || !u.WeeklyResets.After(start.Add(d)) {
			t.Fatalf("at +%s a reset is not in the future: %+v", d, u)
		}
	}
}
