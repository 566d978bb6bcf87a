package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Every goroutine a run starts (vegeta's workers, the transport's
// connection loops) must be gone when the tests end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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
		URL: srv.URL + "/x?timestamp=x", Conns: 4, Requests: 500,
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
	if res.P50 <= 0 || res.P50 > res.P99 || res.P99 > res.Max || res.RPS <= 0 {
		t.Errorf("p50 %v p99 %v max %v rps %.0f", res.P50, res.P99, res.Max, res.RPS)
	}
}

func TestDurationRunCountsEveryResponseOnKeptConnections(t *testing.T) {
	var served, conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	res, err := Run(context.Background(), Options{URL: srv.URL + "/api/health", Conns: 8, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 || res.StatusCounts[200] != res.Requests {
		t.Fatalf("requests %d statuses %v errors %d (%s)", res.Requests, res.StatusCounts, res.Errors, res.FirstError)
	}
	// The run stops sending at the end and waits for what is in flight,
	// so no request is lost between server and generator.
	if got := int(served.Load()); got != res.Requests {
		t.Errorf("server saw %d, generator counted %d", got, res.Requests)
	}
	if got := conns.Load(); got < 1 || got > 8 {
		t.Errorf("%d connections for 8 workers, want 1..8 kept alive", got)
	}
}

func TestStatusesAreCountedNotFollowed(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 4 {
		case 0:
			w.Header().Set("Retry-After", "60")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case 1:
			w.WriteHeader(http.StatusNoContent)
		case 2:
			http.Redirect(w, r, "http://192.0.2.1/elsewhere", http.StatusFound)
		default:
			_, _ = w.Write([]byte("ok"))
		}
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Options{URL: srv.URL + "/", Conns: 3, Requests: 400})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.StatusSummary(), "200×100 204×100 302×100 429×100"; got != want || res.Errors != 0 {
		t.Errorf("statuses %q errors %d (%s), want %q", got, res.Errors, res.FirstError, want)
	}
	if got, want := res.NonOK(), 300; got != want {
		t.Errorf("NonOK = %d, want %d", got, want)
	}
	if got, want := n.Load(), int64(400); got != want {
		t.Errorf("server saw %d requests, want %d (a redirect is never followed)", got, want)
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
	res, err := Run(context.Background(), Options{URL: srv.URL + "/", Conns: 2, Requests: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 20 || res.Errors != 0 || conns.Load() != 20 {
		t.Errorf("requests %d errors %d (%s) conns %d, want 20 responses on 20 connections", res.Requests, res.Errors, res.FirstError, conns.Load())
	}
}

// rawServer answers every connection with reply after reading one request
// line ("" closes at once).
func rawServer(t *testing.T, reply string) string {
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
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				if reply != "" {
					_, _ = bufio.NewReader(c).ReadString('\n')
					_, _ = c.Write([]byte(reply))
				}
			})
		}
	})
	return "http://" + ln.Addr().String() + "/"
}

func TestBrokenAnswersAreErrors(t *testing.T) {
	for _, c := range []struct{ name, reply string }{
		{"closed at once", ""},
		{"garbage", "hello\r\n\r\n"},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := Run(context.Background(), Options{URL: rawServer(t, c.reply), Conns: 2, Requests: 10})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := res.Errors, 10; got != want || res.Requests != 0 || res.FirstError == "" {
				t.Errorf("errors %d (first %q), responses %d; want %d errors and no response", got, res.FirstError, res.Requests, want)
			}
		})
	}
}

func TestRefusedDialIsAnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	res, err := Run(context.Background(), Options{URL: "http://" + addr + "/", Conns: 2, Requests: 6})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Errors != 6 || !strings.Contains(res.FirstError, "refused") {
		t.Errorf("requests %d errors %d first %q, want 6 refused dials", res.Requests, res.Errors, res.FirstError)
	}
}

// hangingServer accepts requests and never answers until the test ends;
// arrived gets a value for each request that reached the handler.
func hangingServer(t *testing.T) (url string, arrived <-chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	in := make(chan struct{}, 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case in <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv.URL + "/", in
}

func TestCancelEndsRequestsInFlight(t *testing.T) {
	url, arrived := hangingServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	returned := make(chan Result, 1)
	errc := make(chan error, 1)
	go func() {
		res, err := Run(ctx, Options{URL: url, Conns: 4, Duration: time.Hour, Timeout: time.Hour})
		returned <- res
		errc <- err
	}()
	<-arrived // a request is in flight
	cancel()
	// Only a guard against hanging forever, not a speed assertion.
	select {
	case res := <-returned:
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
		if res.Requests != 0 || res.Errors != 0 {
			t.Errorf("requests %d errors %d (%s): an interrupted request is neither", res.Requests, res.Errors, res.FirstError)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after its ctx was cancelled")
	}
}

func TestTimeoutEndsARequest(t *testing.T) {
	url, _ := hangingServer(t)
	res, err := Run(context.Background(), Options{URL: url, Conns: 2, Requests: 4, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Errors != 4 || !strings.Contains(res.FirstError, "deadline exceeded") {
		t.Errorf("requests %d errors %d first %q, want 4 timeouts", res.Requests, res.Errors, res.FirstError)
	}
}

func TestOnlyLoopbackURLs(t *testing.T) {
	for _, c := range []struct{ name, url string }{
		{"other host", "http://192.0.2.1:80/"},
		{"name", "http://localhost:8080/"},
		{"IPv6 loopback", "http://[::1]:8080/"},
		{"https", "https://127.0.0.1:8443/"},
		{"unparsable", "http://127.0.0.1:80/%zz"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Run(context.Background(), Options{URL: c.url, Requests: 1}); err == nil {
				t.Errorf("Run(%s) = nil error", c.url)
			}
		})
	}
	if _, err := Run(context.Background(), Options{URL: "http://127.0.0.1:1/"}); err == nil {
		t.Error("a run without Duration, Requests or an ending ctx = nil error")
	}
}

func TestDialLoopbackRefusesOtherAddresses(t *testing.T) {
	for _, addr := range []string{"192.0.2.1:80", "[::1]:80", "localhost:80", "0.0.0.0:80", "no-port"} {
		t.Run(addr, func(t *testing.T) {
			c, err := dialLoopback(context.Background(), "tcp", addr)
			if err == nil {
				c.Close()
				t.Fatalf("dialLoopback(%s) = nil error", addr)
			}
		})
	}
}

func TestSeriesMergesRounds(t *testing.T) {
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer fast.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond) // latency the percentiles must show
		w.WriteHeader(http.StatusAccepted)
	}))
	defer slow.Close()

	var s Series
	for _, o := range []Options{{URL: fast.URL + "/", Conns: 2, Requests: 100}, {URL: slow.URL + "/", Conns: 4, Requests: 300}} {
		if err := s.Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	res := s.Result()
	if got, want := res.StatusSummary(), "200×100 202×300"; got != want || res.Requests != 400 {
		t.Errorf("merged %d requests, statuses %q, want 400 and %q", res.Requests, got, want)
	}
	// Three quarters of the samples took at least 5 ms.
	if res.P50 < 5*time.Millisecond || res.P99 < res.P50 || res.Max < res.P99 {
		t.Errorf("p50 %v p99 %v max %v, want p50 >= 5ms", res.P50, res.P99, res.Max)
	}
	if want := float64(res.Requests) / res.Duration.Seconds(); res.RPS != want {
		t.Errorf("RPS %.1f, want requests / summed wall time %.1f", res.RPS, want)
	}

	var hdr bytes.Buffer
	if err := s.WriteHDR(&hdr); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(hdr.String()), "\n")
	if len(lines) < 10 || !strings.HasPrefix(lines[0], "Value(ms)") {
		t.Fatalf("HDR plot:\n%s", hdr.String())
	}
	last := strings.Fields(lines[len(lines)-1])
	if total, err := strconv.Atoi(last[2]); err != nil || total != 400 {
		t.Errorf("HDR plot's last row %q, want a total count of 400", lines[len(lines)-1])
	}
}

func TestRateSpacesRequests(t *testing.T) {
	// The server answers at once; a closed loop would send the ten
	// requests back to back in a few milliseconds. At 50/s the tenth
	// cannot be sent before 9 intervals of 20 ms have passed (a lower
	// bound: sleeping never ends early). The server's arrival times are
	// not the measure: a first request that waits for the scheduler lands
	// late and shrinks the span it sees.
	var mu sync.Mutex
	var n int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
	}))
	defer srv.Close()
	res, err := Run(context.Background(), Options{URL: srv.URL + "/", Conns: 2, Rate: 50, Requests: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 10 || n != 10 {
		t.Fatalf("requests %d, server saw %d, want 10", res.Requests, n)
	}
	// The pacer releases the tenth request 9 intervals after the attack
	// began, so the run lasts at least 180 ms. (SentRate is no bound: it
	// spans vegeta's send stamps, and a first request that waited for a
	// worker shortens that span while the pacer catches up.)
	if got, want := res.Duration, 9*20*time.Millisecond; got < want {
		t.Errorf("ten requests at 50/s took %v, want at least %v", got, want)
	}
	if res.SentRate <= 0 {
		t.Errorf("SentRate %.1f/s, want > 0", res.SentRate)
	}
}

func TestBuildMakesEachRequest(t *testing.T) {
	type seen struct{ method, key, auth, body string }
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.Header.Get("Idempotency-Key"), r.Header.Get("Authorization"), string(b)})
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	const n = 50
	for _, rate := range []int{0, 2000} {
		t.Run(fmt.Sprintf("rate=%d", rate), func(t *testing.T) {
			got = nil
			res, err := Run(context.Background(), Options{
				URL: srv.URL + "/p", Conns: 4, Requests: n, Rate: rate,
				Header: http.Header{"Authorization": {"Bearer x"}},
				Build: func(i uint64) Request {
					return Request{Method: http.MethodPost, Body: []byte(fmt.Sprintf(`{"n":%d}`, i)),
						Header: http.Header{"Idempotency-Key": {fmt.Sprintf("k%d", i)}}}
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCounts[http.StatusCreated] != n || len(got) != n {
				t.Fatalf("statuses %s, server saw %d, want %d×201", res.StatusSummary(), len(got), n)
			}
			keys, bodies := map[string]bool{}, map[string]bool{}
			for _, s := range got {
				if s.method != http.MethodPost || s.auth != "Bearer x" {
					t.Errorf("request %+v, want a POST with the run's Authorization", s)
				}
				if want := `{"n":` + strings.TrimPrefix(s.key, "k") + `}`; s.body != want {
					t.Errorf("body %q with key %q, want %q", s.body, s.key, want)
				}
				keys[s.key], bodies[s.body] = true, true
			}
			if len(keys) != n || len(bodies) != n {
				t.Errorf("%d distinct keys and %d bodies, want %d each", len(keys), len(bodies), n)
			}
		})
	}
}

// TestURLsTakeTurns: with several URLs one schedule feeds them all in
// turn, as a round-robin balancer does: each server gets every len-th
// request (Build's n-th to the n % len-th), at the run's rate, with or
// without Build.
func TestURLsTakeTurns(t *testing.T) {
	const servers, n = 3, 30
	var mu sync.Mutex
	got := make([][]string, servers) // each server's request keys in arrival order
	urls := make([]string, servers)
	for i := range servers {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got[i] = append(got[i], r.Header.Get("Idempotency-Key"))
			mu.Unlock()
			w.WriteHeader(http.StatusCreated)
		}))
		defer srv.Close()
		urls[i] = srv.URL + "/p"
	}
	build := func(i uint64) Request {
		return Request{Method: http.MethodPost, Header: http.Header{"Idempotency-Key": {fmt.Sprint(i)}}}
	}
	for _, c := range []struct {
		name  string
		rate  int
		build func(uint64) Request
	}{{"rate=0", 0, build}, {"rate=2000", 2000, build}, {"static", 0, nil}} {
		t.Run(c.name, func(t *testing.T) {
			for i := range got {
				got[i] = nil
			}
			res, err := Run(context.Background(), Options{
				URLs: urls, Conns: 1, Requests: n, Rate: c.rate, Build: c.build,
				Header: http.Header{"Idempotency-Key": {"static"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCounts[http.StatusCreated] != n {
				t.Fatalf("statuses %s, want %d×201", res.StatusSummary(), n)
			}
			for i, keys := range got {
				var want []string
				for k := i; k < n; k += servers {
					if c.build == nil {
						want = append(want, "static")
					} else {
						want = append(want, fmt.Sprint(k))
					}
				}
				if fmt.Sprint(keys) != fmt.Sprint(want) {
					t.Errorf("server %d got requests %v, want %v", i, keys, want)
				}
			}
		})
	}
	if _, err := Run(context.Background(), Options{URL: urls[0], URLs: urls, Requests: 1}); err == nil {
		t.Error("a run with both URL and URLs = nil error")
	}
	if _, err := Run(context.Background(), Options{URLs: []string{urls[0], "http://192.0.2.1:80/"}, Requests: 1}); err == nil {
		t.Error("a run with a URL off loopback among URLs = nil error")
	}
}
