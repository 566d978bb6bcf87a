// Package loadgen is a small HTTP/1.1 load generator for loopback
// benchmarks: N persistent keep-alive connections, each sending one
// pre-built GET at a time and reading the answer with a minimal parser, for
// a fixed time. It allocates nothing per request so that on a small machine
// the generator costs as little CPU as possible next to the server it
// measures.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Options describes one run.
type Options struct {
	Addr     string        // host:port to dial
	Path     string        // request target, query included, e.g. "/api/health"
	Host     string        // Host header; "" uses Addr
	Header   http.Header   // extra request headers, e.g. Authorization
	Conns    int           // connections (default 16)
	Duration time.Duration // how long to run; 0 runs until ctx ends or Requests is reached
	// Requests stops the run after this many responses in total (0: no
	// limit). Tests use it to compare exact counts with the server's.
	Requests int
}

// Result is what a run measured. Latency is from writing the request to
// having read the whole response body, per request.
type Result struct {
	Requests     int           // complete responses, any status
	Duration     time.Duration // wall time of the run
	RPS          float64       // Requests / Duration
	P50, P90     time.Duration
	P99, Max     time.Duration
	Errors       int         // failed dials, writes, reads or unparseable responses
	FirstError   string      // the first error, for a report; "" when none
	StatusCounts map[int]int // responses by status code
	Hist         *Histogram  // every latency, for merging rounds
}

// NonOK is the number of responses whose status was not 200.
func (r Result) NonOK() int { return r.Requests - r.StatusCounts[200] }

// StatusSummary lists the status counts as "200×1234 429×5", sorted.
func (r Result) StatusSummary() string {
	codes := make([]int, 0, len(r.StatusCounts))
	for c := range r.StatusCounts {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var b []byte
	for i, c := range codes {
		if i > 0 {
			b = append(b, ' ')
		}
		b = fmt.Appendf(b, "%d×%d", c, r.StatusCounts[c])
	}
	return string(b)
}

// ErrChunked is returned (and counted) for a response without
// Content-Length; the parser supports only fixed-length bodies.
var ErrChunked = errors.New("loadgen: chunked or close-delimited response bodies are not supported; the server must send Content-Length")

// Run sends requests until opts.Duration has passed, ctx ends or
// opts.Requests responses were read. Errors on single requests are counted
// in the Result, not returned; Run returns an error only for bad options.
func Run(ctx context.Context, opts Options) (Result, error) {
	if opts.Addr == "" {
		return Result{}, errors.New("loadgen: Options.Addr is required")
	}
	if opts.Path == "" || opts.Path[0] != '/' {
		return Result{}, fmt.Errorf("loadgen: Options.Path must start with /, got %q", opts.Path)
	}
	if opts.Conns <= 0 {
		opts.Conns = 16
	}
	if opts.Duration <= 0 && opts.Requests <= 0 && ctx.Done() == nil {
		return Result{}, errors.New("loadgen: no end: set Duration or Requests, or pass a ctx that ends")
	}
	req := buildRequest(opts)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if opts.Duration > 0 {
		runCtx, cancel = context.WithTimeout(runCtx, opts.Duration)
		defer cancel()
	}
	var budget *atomic.Int64
	if opts.Requests > 0 {
		budget = new(atomic.Int64)
		budget.Store(int64(opts.Requests))
	}

	workers := make([]*worker, opts.Conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &worker{addr: opts.Addr, req: req, budget: budget, hist: NewHistogram()}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(runCtx)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	res := Result{Duration: elapsed, StatusCounts: map[int]int{}, Hist: NewHistogram()}
	for _, w := range workers {
		res.Requests += w.requests
		res.Errors += w.errors
		if res.FirstError == "" && w.firstErr != nil {
			res.FirstError = w.firstErr.Error()
		}
		for code, n := range w.status {
			if n > 0 {
				res.StatusCounts[code] += n
			}
		}
		res.Hist.Merge(w.hist)
	}
	res.fill()
	return res, nil
}

// Merge combines results of several runs of the same target (rounds):
// counts and durations add up, percentiles come from all samples.
func Merge(rs ...Result) Result {
	out := Result{StatusCounts: map[int]int{}, Hist: NewHistogram()}
	for _, r := range rs {
		out.Requests += r.Requests
		out.Duration += r.Duration
		out.Errors += r.Errors
		if out.FirstError == "" {
			out.FirstError = r.FirstError
		}
		for c, n := range r.StatusCounts {
			out.StatusCounts[c] += n
		}
		out.Hist.Merge(r.Hist)
	}
	out.fill()
	return out
}

func (r *Result) fill() {
	if r.Duration > 0 {
		r.RPS = float64(r.Requests) / r.Duration.Seconds()
	}
	r.P50 = r.Hist.Percentile(0.50)
	r.P90 = r.Hist.Percentile(0.90)
	r.P99 = r.Hist.Percentile(0.99)
	r.Max = r.Hist.Max()
}

func buildRequest(opts Options) []byte {
	host := opts.Host
	if host == "" {
		host = opts.Addr
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: usage-bench-loadgen\r\n", opts.Path, host)
	keys := make([]string, 0, len(opts.Header))
	for k := range opts.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range opts.Header[k] {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// worker is one connection's loop and its private counters, read only
// after the loop ended.
type worker struct {
	addr   string
	req    []byte
	budget *atomic.Int64

	requests int
	errors   int
	firstErr error
	status   [600]int
	hist     *Histogram
}

func (w *worker) fail(err error) {
	w.errors++
	if w.firstErr == nil {
		w.firstErr = err
	}
}

func (w *worker) run(ctx context.Context) {
	var d net.Dialer
	br := bufio.NewReaderSize(nil, 16<<10)
	for ctx.Err() == nil {
		conn, err := d.DialContext(ctx, "tcp", w.addr)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.fail(fmt.Errorf("loadgen: dial %s: %w", w.addr, err))
			// A refused dial returns at once; pause so that a dead server
			// does not turn the run into a busy loop.
			sleep(ctx, 10*time.Millisecond)
			continue
		}
		// A blocked read or write ends when the run does.
		stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
		br.Reset(conn)
		err = w.serve(ctx, conn, br)
		stop()
		_ = conn.Close()
		if errors.Is(err, errDone) {
			return
		}
		if err != nil && ctx.Err() == nil {
			w.fail(err)
		}
	}
}

// refund returns the budget of a request that got no response, so that a
// run with Options.Requests still ends with that many responses.
func (w *worker) refund() {
	if w.budget != nil {
		w.budget.Add(1)
	}
}

// errDone ends a connection's loop without counting an error.
var errDone = errors.New("loadgen: done")

// serve sends requests on one connection until it fails, the server asks
// to close it, or the run ends. A nil error means reconnect.
func (w *worker) serve(ctx context.Context, conn net.Conn, br *bufio.Reader) error {
	for ctx.Err() == nil {
		if w.budget != nil && w.budget.Add(-1) < 0 {
			return errDone
		}
		t0 := time.Now()
		if _, err := conn.Write(w.req); err != nil {
			w.refund()
			return fmt.Errorf("loadgen: write: %w", err)
		}
		code, keep, err := readResponse(br)
		if err != nil {
			w.refund()
			return err
		}
		w.hist.Record(time.Since(t0))
		w.requests++
		w.status[code]++
		if !keep {
			return nil
		}
	}
	return errDone
}

// readResponse reads one response and discards its body. keep is false
// when the server announced Connection: close.
func readResponse(br *bufio.Reader) (code int, keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, false, fmt.Errorf("loadgen: connection closed by the server before a response: %w", err)
		}
		return 0, false, fmt.Errorf("loadgen: reading the status line: %w", err)
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("loadgen: malformed status line %q", truncate(line))
	}
	code, ok := atoi(line[9:12])
	if !ok || code < 100 || code > 599 {
		return 0, false, fmt.Errorf("loadgen: malformed status code in %q", truncate(line))
	}
	keep = line[7] == '1' // HTTP/1.0 closes unless told otherwise
	length := -1
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, false, fmt.Errorf("loadgen: reading headers: %w", err)
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte{':'})
		if !ok {
			return 0, false, fmt.Errorf("loadgen: malformed header line %q", truncate(h))
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := atoi(value)
			if !ok {
				return 0, false, fmt.Errorf("loadgen: bad Content-Length %q", truncate(value))
			}
			length = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, false, ErrChunked
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keep = true
			}
		}
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return code, keep, nil
	}
	if length < 0 {
		return 0, false, ErrChunked
	}
	if _, err := br.Discard(length); err != nil {
		return 0, false, fmt.Errorf("loadgen: reading a %d-byte body: %w", length, err)
	}
	return code, keep, nil
}

// atoi parses a non-negative decimal without allocating.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func truncate(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
