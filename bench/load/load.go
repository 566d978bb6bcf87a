// Package load drives an HTTP server on loopback for benchmarks with
// vegeta's attacker: a fixed number of workers, each with one request in
// flight (a closed loop, like clients that wait for their answer), or a
// fixed rate whatever the answers (an open loop, like many independent
// clients), for a time or a number of requests. Latencies go into vegeta's
// metrics, whose HDR histogram plot WriteHDR writes out.
//
// Only 127.0.0.1 is ever dialled, and every goroutine a run starts has
// ended when Run returns.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Options describes one run.
type Options struct {
	URL string // http://127.0.0.1:port/path?query
	// URLs, instead of URL: the n-th request of a run goes to
	// URLs[n % len(URLs)], as a round-robin balancer in front of several
	// replicas sends one stream of requests. (A run per replica at a
	// share of the rate is not that: their schedules start together, and
	// the replicas get their requests in simultaneous bursts.)
	URLs     []string
	Header   http.Header   // extra request headers, e.g. Authorization
	Conns    int           // workers, one connection each (default 16)
	Duration time.Duration // how long to send; 0: until Requests or ctx ends
	Requests int           // stop after sending this many (0: no limit)
	// Timeout bounds one request (default 10 s): a server that never
	// answers turns into errors, not a hung run.
	Timeout time.Duration
	// Rate > 0 sends that many requests per second on a fixed schedule,
	// whether or not earlier ones were answered (an open loop), with at
	// most Conns in flight. A saturated closed loop measures mostly its own
	// queue; a fixed rate measures what a request costs at that load.
	// 0: the closed loop.
	Rate int
	// Build, when set, makes the n-th request of a run (from 0): its
	// method, body and headers on top of Header, e.g. a POST with an
	// Idempotency-Key of its own. Workers call it concurrently.
	Build func(n uint64) Request
}

// Request is what Options.Build makes for one request.
type Request struct {
	Method string // "" is GET
	Body   []byte
	Header http.Header
}

// Result is what runs measured. Latency is vegeta's: from building the
// request to having read the whole body.
type Result struct {
	Requests     int           // complete responses, any status
	Duration     time.Duration // wall time of the runs
	RPS          float64       // Requests / Duration
	P50, P90     time.Duration
	P99, Max     time.Duration
	SentRate     float64     // requests sent per second (vegeta's rate: first to last sent)
	Errors       int         // requests without a response (dial, read, timeout)
	FirstError   string      // the first of them, for a report; "" when none
	StatusCounts map[int]int // responses by status code
}

// NonOK is the number of responses whose status was not 200.
func (r Result) NonOK() int { return r.Requests - r.StatusCounts[http.StatusOK] }

// StatusSummary lists the status counts as "200×1234 429×5", sorted.
func (r Result) StatusSummary() string {
	codes := make([]int, 0, len(r.StatusCounts))
	for c := range r.StatusCounts {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%d×%d", c, r.StatusCounts[c])
	}
	return strings.Join(parts, " ")
}

// Series gathers the runs of one target (rounds) so that percentiles come
// from every sample of every run. The zero value is ready.
type Series struct {
	metrics  vegeta.Metrics
	wall     time.Duration
	errors   int
	firstErr string
	status   map[int]int
	// Requests sent after the first of their run, and the time from each
	// run's first to its last: their ratio is the rate the runs kept,
	// without the gaps between rounds.
	sentAfter uint64
	sentSpan  time.Duration
}

// Run sends one run of requests and adds what it measured to s. Errors on
// single requests are counted, not returned; Run returns an error for bad
// options and ctx's error when ctx ended the run (requests it cut short
// count as nothing).
func (s *Series) Run(ctx context.Context, o Options) error {
	target, err := check(&o)
	if err != nil {
		return err
	}
	if o.Duration <= 0 && o.Requests <= 0 && ctx.Done() == nil {
		return errors.New("load: no end: set Duration or Requests, or pass a ctx that ends")
	}
	tr := &http.Transport{
		DialContext:         dialLoopback,
		Proxy:               nil,  // never through a proxy from the environment
		DisableCompression:  true, // the answer's own bytes, as a plain client gets them
		MaxConnsPerHost:     o.Conns,
		MaxIdleConnsPerHost: o.Conns,
	}
	// The idle connections' read and write loops end here; every request
	// has finished by then, since vegeta closes its results only after
	// its workers returned.
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: ctxTransport{ctx, o.Timeout, tr},
		// A redirect is counted by its status, never followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// Rate or not, Conns workers at most: in an open loop a request is
	// sent late only when Conns are already in flight.
	atk := vegeta.NewAttacker(vegeta.Client(client), vegeta.Workers(uint64(o.Conns)),
		vegeta.MaxWorkers(uint64(o.Conns)), vegeta.MaxBody(0))
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()

	if s.status == nil {
		s.status = map[int]int{}
	}
	start := time.Now()
	var pacer vegeta.Pacer = closedLoop(o.Requests)
	if o.Rate > 0 {
		pacer = limited{vegeta.ConstantPacer{Freq: o.Rate, Per: time.Second}, uint64(o.Requests)}
	}
	results := atk.Attack(targeter(o, target), pacer, o.Duration, "")
	var first, last time.Time
	var sent uint64
	for r := range results {
		if sent++; first.IsZero() || r.Timestamp.Before(first) {
			first = r.Timestamp
		}
		if r.Timestamp.After(last) {
			last = r.Timestamp
		}
		switch {
		case r.Code != 0:
			s.metrics.Add(r)
			s.status[int(r.Code)]++
		case ctx.Err() == nil:
			s.errors++
			if s.firstErr == "" {
				s.firstErr = r.Error
			}
		}
	}
	s.wall += time.Since(start)
	if sent > 1 {
		s.sentAfter += sent - 1
		s.sentSpan += last.Sub(first)
	}
	return ctx.Err()
}

// Result summarises every run so far.
func (s *Series) Result() Result {
	s.metrics.Close()
	r := Result{
		Requests: int(s.metrics.Requests), Duration: s.wall,
		Errors: s.errors, FirstError: s.firstErr, StatusCounts: map[int]int{},
	}
	for c, n := range s.status {
		r.StatusCounts[c] = n
	}
	if r.Requests > 0 {
		l := s.metrics.Latencies
		r.P50, r.P90, r.P99, r.Max = l.P50, l.P90, l.P99, l.Max
	}
	if s.sentSpan > 0 {
		r.SentRate = float64(s.sentAfter) / s.sentSpan.Seconds()
	}
	if s.wall > 0 {
		r.RPS = float64(r.Requests) / s.wall.Seconds()
	}
	return r
}

// WriteHDR writes the latency distribution of every run so far in the
// HDR histogram plot format (vegeta's hdrplot report).
func (s *Series) WriteHDR(w io.Writer) error {
	s.metrics.Close()
	return vegeta.NewHDRHistogramPlotReporter(&s.metrics).Report(w)
}

// Run is one run in a Series of its own.
func Run(ctx context.Context, o Options) (Result, error) {
	var s Series
	err := s.Run(ctx, o)
	return s.Result(), err
}

// check fills o's defaults and returns the run's first target.
func check(o *Options) (vegeta.Target, error) {
	switch {
	case o.URL != "" && len(o.URLs) > 0:
		return vegeta.Target{}, errors.New("load: set URL or URLs, not both")
	case o.URL != "":
		o.URLs = []string{o.URL}
	case len(o.URLs) == 0:
		return vegeta.Target{}, errors.New("load: no URL")
	}
	for _, raw := range o.URLs {
		u, err := url.Parse(raw)
		if err != nil {
			return vegeta.Target{}, fmt.Errorf("load: URL: %w", err)
		}
		if u.Scheme != "http" || u.Hostname() != loopback {
			return vegeta.Target{}, fmt.Errorf("load: URL %q: only http://%s:port/… is allowed", raw, loopback)
		}
	}
	if o.Conns <= 0 {
		o.Conns = 16
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Rate < 0 {
		return vegeta.Target{}, fmt.Errorf("load: Rate %d: want 0 (closed loop) or requests per second", o.Rate)
	}
	return vegeta.Target{Method: http.MethodGet, URL: o.URLs[0], Header: o.Header}, nil
}

const loopback = "127.0.0.1"

// dialLoopback dials only 127.0.0.1: whatever a server answers, the
// benchmark's traffic never leaves the machine.
func dialLoopback(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("load: dial %s: %w", addr, err)
	}
	if host != loopback {
		return nil, fmt.Errorf("load: refusing to dial %s: only %s", addr, loopback)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp4", addr)
}

// ctxTransport gives every request the run's ctx and its timeout: vegeta
// builds its requests without a ctx, and a request in flight must end with
// the run. (http.Client.Timeout would be lost here: it lives in the ctx
// this replaces.)
type ctxTransport struct {
	ctx     context.Context
	timeout time.Duration
	rt      http.RoundTripper
}

func (t ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	resp, err := t.rt.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// cancelOnClose ends a request's ctx once its body is read and closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// closedLoop never makes a worker wait: each worker sends its next request
// when its last one was answered, so the workers set the concurrency. A
// limit n > 0 stops the run after n requests.
type closedLoop uint64

func (n closedLoop) Pace(_ time.Duration, hits uint64) (time.Duration, bool) {
	return 0, n > 0 && hits >= uint64(n)
}

func (closedLoop) Rate(time.Duration) float64 { return 0 }

// limited is a pacer that stops after n hits (0: no limit).
type limited struct {
	vegeta.Pacer
	n uint64
}

func (l limited) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if l.n > 0 && hits >= l.n {
		return 0, true
	}
	return l.Pacer.Pace(elapsed, hits)
}

// targeter is vegeta's static targeter over the run's URLs in turn, or
// with Build a new request each time, to the URLs in turn too.
func targeter(o Options, base vegeta.Target) vegeta.Targeter {
	if o.Build == nil {
		targets := make([]vegeta.Target, len(o.URLs))
		for i, u := range o.URLs {
			targets[i] = base
			targets[i].URL = u
		}
		return vegeta.NewStaticTargeter(targets...)
	}
	var n atomic.Uint64
	return func(t *vegeta.Target) error {
		i := n.Add(1) - 1
		r := o.Build(i)
		*t = base
		t.URL = o.URLs[i%uint64(len(o.URLs))]
		if r.Method != "" {
			t.Method = r.Method
		}
		t.Body = r.Body
		t.Header = base.Header.Clone()
		if t.Header == nil {
			t.Header = http.Header{}
		}
		for k, v := range r.Header {
			t.Header[k] = v
		}
		return nil
	}
}
