package loadgen

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

// hostOf strips the scheme of an httptest URL.
func hostOf(url string) string { return strings.TrimPrefix(url, "http://") }

func TestCountsMatchTheServerAndHeadersArrive(t *testing.T) {
	var served, authed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if r.Header.Get("Authorization") == "Bearer secret" && r.URL.RawQuery == "timestamp=x" {
			authed.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()

	res, err := Run(context.Background(), Options{
		Addr: hostOf(srv.URL), Path: "/x?timestamp=x", Conns: 4, Requests: 500,
		Header: http.Header{"Authorization": {"Bearer secret"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 500 || served.Load() != 500 || authed.Load() != 500 {
		t.Errorf("requests %d, server saw %d (%d with the header and query), want 500 each", res.Requests, served.Load(), authed.Load())
	}
	if res.StatusCounts[200] != 500 || res.Errors != 0 || res.NonOK() != 0 {
		t.Errorf("statuses %v errors %d (%s)", res.StatusCounts, res.Errors, res.FirstError)
	}
	if res.Hist.Count() != 500 || res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.Max || res.RPS <= 0 {
		t.Errorf("samples %d p50 %v p99 %v max %v rps %.0f", res.Hist.Count(), res.P50, res.P99, res.Max, res.RPS)
	}
}

func TestDurationRunAgainstFiberCountsEveryResponse(t *testing.T) {
	var served atomic.Int64
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/api/health", func(c *fiber.Ctx) error {
		served.Add(1)
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.SendString(`{"status":"ok"}`)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Listener(ln) }()
	defer func() {
		_ = app.Shutdown()
		<-done
	}()

	res, err := Run(context.Background(), Options{Addr: ln.Addr().String(), Path: "/api/health", Conns: 8, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 || res.StatusCounts[200] != res.Requests {
		t.Fatalf("requests %d statuses %v errors %d (%s)", res.Requests, res.StatusCounts, res.Errors, res.FirstError)
	}
	// A request cut off by the end of the run may have reached the
	// server without its response being read: at most one per conn.
	if got := int(served.Load()); got < res.Requests || got > res.Requests+8 {
		t.Errorf("server saw %d, generator counted %d", got, res.Requests)
	}
}

func TestNon2xxAreCountedByStatus(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 3 {
		case 0:
			w.Header().Set("Retry-After", "60")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case 1:
			w.WriteHeader(http.StatusNoContent)
		default:
			_, _ = w.Write([]byte("ok"))
		}
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Options{Addr: hostOf(srv.URL), Path: "/", Conns: 3, Requests: 300})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCounts[429] != 100 || res.StatusCounts[204] != 100 || res.StatusCounts[200] != 100 || res.Errors != 0 {
		t.Errorf("statuses %v errors %d (%s), want 100 each of 200, 204, 429", res.StatusCounts, res.Errors, res.FirstError)
	}
	if res.NonOK() != 200 || res.StatusSummary() != "200×100 204×100 429×100" {
		t.Errorf("non-OK %d, summary %q", res.NonOK(), res.StatusSummary())
	}
}

func TestConnectionCloseReconnects(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = w.Write([]byte("bye"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	res, err := Run(context.Background(), Options{Addr: hostOf(srv.URL), Path: "/", Conns: 2, Requests: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 20 || res.Errors != 0 || conns.Load() < 20 {
		t.Errorf("requests %d errors %d (%s) conns %d", res.Requests, res.Errors, res.FirstError, conns.Load())
	}
}

// closingServer accepts connections and closes them at once, optionally
// after reading the request.
func closingServer(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				if reply != "" {
					_, _ = bufio.NewReader(c).ReadString('\n')
					_, _ = c.Write([]byte(reply))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestServerClosingConnectionsIsErrorsNotAHang(t *testing.T) {
	addr := closingServer(t, "")
	res, err := Run(context.Background(), Options{Addr: addr, Path: "/", Conns: 4, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Errors == 0 || !strings.Contains(res.FirstError, "loadgen:") {
		t.Errorf("requests %d errors %d first %q, want only errors", res.Requests, res.Errors, res.FirstError)
	}
}

func TestGarbageAndChunkedResponsesAreErrors(t *testing.T) {
	for name, c := range map[string]struct{ reply, want string }{
		"garbage":       {"hello\r\n", "malformed status line"},
		"bad code":      {"HTTP/1.1 2x0 OK\r\n\r\n", "malformed status code"},
		"no length":     {"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody", "Content-Length"},
		"short body":    {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "10-byte body"},
		"chunked":       {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "chunked"},
		"bad length":    {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"},
		"header syntax": {"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n", "malformed header"},
	} {
		t.Run(name, func(t *testing.T) {
			addr := closingServer(t, c.reply)
			res, err := Run(context.Background(), Options{Addr: addr, Path: "/", Conns: 1, Duration: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != 0 || res.Errors == 0 || !strings.Contains(res.FirstError, c.want) {
				t.Errorf("requests %d errors %d first %q, want an error with %q", res.Requests, res.Errors, res.FirstError, c.want)
			}
		})
	}
	// The chunked case names the limitation clearly.
	addr := closingServer(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
	res, _ := Run(context.Background(), Options{Addr: addr, Path: "/", Conns: 1, Duration: 50 * time.Millisecond})
	if res.FirstError != ErrChunked.Error() {
		t.Errorf("first error %q, want %q", res.FirstError, ErrChunked)
	}
}

func TestRefusedDialIsAnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	res, err := Run(context.Background(), Options{Addr: addr, Path: "/", Conns: 2, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Errors == 0 || !strings.Contains(res.FirstError, "dial") {
		t.Errorf("requests %d errors %d first %q", res.Requests, res.Errors, res.FirstError)
	}
}

func TestCancelStopsAServerThatNeverAnswers(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan Result, 1)
	go func() {
		res, _ := Run(ctx, Options{Addr: hostOf(srv.URL), Path: "/", Conns: 4, Duration: time.Hour})
		returned <- res
	}()
	time.Sleep(50 * time.Millisecond) // let the requests reach the handler
	cancel()
	// Only a guard against hanging forever, not a speed assertion.
	select {
	case res := <-returned:
		if res.Requests != 0 || res.Errors != 0 {
			t.Errorf("requests %d errors %d (%s): an interrupted request is neither", res.Requests, res.Errors, res.FirstError)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after its ctx was cancelled")
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{{Path: "/"}, {Addr: "127.0.0.1:1", Path: "x", Requests: 1}, {Addr: "127.0.0.1:1", Path: "/"}} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v) = nil error", o)
		}
	}
}

func TestMergeAddsRounds(t *testing.T) {
	a := Result{Requests: 100, Duration: time.Second, StatusCounts: map[int]int{200: 100}, Hist: NewHistogram()}
	b := Result{Requests: 300, Duration: time.Second, Errors: 2, FirstError: "x", StatusCounts: map[int]int{200: 299, 429: 1}, Hist: NewHistogram()}
	for range 100 {
		a.Hist.Record(time.Millisecond)
	}
	for range 300 {
		b.Hist.Record(3 * time.Millisecond)
	}
	m := Merge(a, b)
	if m.Requests != 400 || m.RPS != 200 || m.Errors != 2 || m.FirstError != "x" || m.NonOK() != 1 {
		t.Errorf("merged %+v", m)
	}
	if m.P50 < 2900*time.Microsecond || m.P50 > 3100*time.Microsecond {
		t.Errorf("p50 %v, want about 3ms", m.P50)
	}
}
