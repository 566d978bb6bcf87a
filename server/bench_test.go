package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/claude-usage/widget/bench/load"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// BenchmarkGetLoopback measures the real fiber app (all middleware, JSON
// access log to a discarded writer) over loopback TCP with 16 connections,
// 1 000 stored versions: ns/op is wall time per request at that
// concurrency. `make bench` compares the running server with a bare fiber
// handler (cmd/usage-bench); this one is for profiling with -cpuprofile.
func BenchmarkGetLoopback(b *testing.B) {
	dir := b.TempDir()
	clk := &fakeClock{now: t0}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	st, err := store.Open(context.Background(), store.Options{Dir: dir, RetentionVersions: 1 << 20, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for i := range 1000 {
		sn := shared.Snapshot{Account: "default", ScrapedAt: t0.Add(time.Duration(i-1000) * time.Minute), Source: "bench", Capture: shared.CaptureAPI,
			Meters: []shared.Meter{
				{ID: shared.MeterSession, Label: "Current session", PercentUsed: float64(i % 100)},
				{ID: shared.MeterWeeklyAll, Label: "All models", PercentUsed: 12},
				{ID: shared.MeterWeeklySonnet, Label: "Sonnet only", PercentUsed: 3},
			}}
		if _, err := st.Save(context.Background(), store.SaveRequest{Snapshot: sn}); err != nil {
			b.Fatal(err)
		}
	}
	srv, err := New(Config{APIKey: testKey, ReadToken: testToken, RateLimit: 1000, Now: clk.Now}, st, log)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.App().Listener(ln) }()
	defer func() { _ = srv.App().ShutdownWithTimeout(5 * time.Second); <-done }()

	// The baseline: a bare fiber app answering with the same bytes.
	bare := fiber.New(fiber.Config{DisableStartupMessage: true})
	bodies := map[string][]byte{}
	paths := []string{shared.PathHealth, shared.PathUsage,
		shared.PathUsage + "?timestamp=" + t0.Add(-500*time.Minute).Format(time.RFC3339)}
	for _, p := range paths {
		req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+p, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		bodies[p] = body
	}
	bare.Get("/*", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(bodies[string(c.Request().RequestURI())])
	})
	bareLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	bareDone := make(chan struct{})
	go func() { defer close(bareDone); _ = bare.Listener(bareLn) }()
	defer func() { _ = bare.ShutdownWithTimeout(5 * time.Second); <-bareDone }()

	for _, path := range paths {
		for _, target := range []struct{ name, addr string }{{"server", ln.Addr().String()}, {"bare", bareLn.Addr().String()}} {
			b.Run(target.name+path, func(b *testing.B) {
				benchLoopback(b, target.addr, path)
			})
		}
	}
}

func benchLoopback(b *testing.B, addr, path string) {
	b.ResetTimer()
	res, err := load.Run(context.Background(), load.Options{URL: "http://" + addr + path,
		Header: http.Header{"Authorization": {"Bearer " + testToken}}, Conns: 16, Requests: b.N})
	if err != nil {
		b.Fatal(err)
	}
	if res.Errors > 0 || res.NonOK() > 0 {
		b.Fatalf("%d errors (%s), statuses %s", res.Errors, res.FirstError, res.StatusSummary())
	}
	b.ReportMetric(float64(res.P99.Microseconds()), "p99-µs")
}
