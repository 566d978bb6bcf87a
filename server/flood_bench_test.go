package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// BenchmarkWrongKeyFlood sends 200 000 requests, each with a different
// wrong key, from one address over 16 loopback connections, and reports
// the server's throughput and how much its heap grew (after a GC) for
// them: the cost of a key-guessing flood. Run with -benchtime=1x.
func BenchmarkWrongKeyFlood(b *testing.B) {
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		b.Run(method, func(b *testing.B) { floodWrongKeys(b, method, 200_000) })
	}
}

func floodWrongKeys(b *testing.B, method string, total int) {
	dir := b.TempDir()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	st, err := store.Open(context.Background(), store.Options{Dir: dir, RetentionVersions: 100, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	srv, err := New(Config{APIKey: testKey, ReadToken: testToken, RateLimit: 30}, st, log)
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

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	body := snap("default", time.Now().Add(-time.Minute), 1)
	before := heap()
	b.ResetTimer()
	start := time.Now()
	var next, failed atomic.Int64
	codes := sync.Map{}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				failed.Add(1)
				return
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			for {
				i := next.Add(1)
				if i > int64(total) {
					return
				}
				var req string
				if method == http.MethodPost {
					req = fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-API-Key: guess-%012d\r\nContent-Length: %d\r\n\r\n%s",
						shared.PathUsage, i, len(body), body)
				} else {
					req = fmt.Sprintf("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer guess-%012d\r\n\r\n", shared.PathUsage, i)
				}
				if _, err := io.WriteString(conn, req); err != nil {
					failed.Add(1)
					return
				}
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					failed.Add(1)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				n, _ := codes.LoadOrStore(res.StatusCode, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	after := heap()
	if failed.Load() > 0 {
		b.Fatalf("%d connections failed", failed.Load())
	}
	summary := ""
	codes.Range(func(k, v any) bool {
		summary += fmt.Sprintf(" %d×%d", k, v.(*atomic.Int64).Load())
		return true
	})
	b.ReportMetric(float64(total)/elapsed.Seconds(), "req/s")
	b.ReportMetric((float64(after)-float64(before))/(1<<20), "heap-growth-MB")
	b.Logf("%s: %d wrong keys in %v, statuses%s", method, total, elapsed.Round(time.Millisecond), summary)
}
