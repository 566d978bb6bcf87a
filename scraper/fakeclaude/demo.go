package fakeclaude

// The demo: the fake page on loopback with values that move over time, so
// that `usage-scraper run --demo` (and `make run`) show live data without a
// Claude account.

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"time"
)

const (
	sessionWindow = 5 * time.Hour
	week          = 7 * 24 * time.Hour
)

// DemoUsage is the demo reading at now: the session meter climbs through each
// 5-hour window (windows are multiples of 5 h since Go's zero time, so they
// are the same for every run) and resets at its end; the weekly meters climb through the
// week that ends on Thursday 09:00 UTC.
func DemoUsage(now time.Time) Usage {
	now = now.UTC()
	sessionStart := now.Truncate(sessionWindow)
	fs := float64(now.Sub(sessionStart)) / float64(sessionWindow)
	weekEnd := NextWeekly(now)
	fw := float64(now.Sub(weekEnd.Add(-week))) / float64(week)
	return Usage{
		Session:         round1(5 + fs*90),
		WeeklyAll:       round1(4 + fw*70),
		Sonnet:          round1(1 + fw*25),
		Opus:            round1(fw * 8),
		SessionResets:   sessionStart.Add(sessionWindow),
		WeeklyResets:    weekEnd,
		ExtraUsedCents:  1000 + int64(fw*3000),
		ExtraLimitCents: 5000,
	}
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// Start serves the demo (DemoUsage) on addr (loopback only; "" means
// 127.0.0.1:0) until ctx ends and returns its base URL. now is the demo's
// clock (time.Now when nil).
func Start(ctx context.Context, addr string, now func() time.Time) (string, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("fakeclaude: address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", fmt.Errorf("fakeclaude: address %q is not loopback; the demo site is for this machine only", addr)
	}
	if now == nil {
		now = time.Now
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("fakeclaude: listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           Handler(Options{Now: now, Usage: DemoUsage}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	// Serve ends with ErrServerClosed on Shutdown; any other end (a
	// broken listener) shows up as a NETWORK failure of the next scrape.
	go func() { _ = srv.Serve(l) }()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return "http://" + l.Addr().String(), nil
}
