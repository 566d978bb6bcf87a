package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

// sseClient reads a live stream from a real socket, one block (the lines
// up to a blank line) at a time.
type sseClient struct {
	res    *http.Response
	cancel context.CancelFunc
	blocks chan []string // closed at the end of the stream
}

// openStream connects to the stream; a non-200 answer is returned as resp
// with a nil client.
func openStream(t *testing.T, base string) (*sseClient, resp) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+shared.PathStream, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET stream: %v", err)
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		return nil, resp{status: res.StatusCode, header: res.Header, body: b}
	}
	c := &sseClient{res: res, cancel: cancel, blocks: make(chan []string, 64)}
	go func() {
		defer close(c.blocks)
		sc := bufio.NewScanner(res.Body)
		var block []string
		for sc.Scan() {
			if l := sc.Text(); l != "" {
				block = append(block, l)
				continue
			}
			c.blocks <- block
			block = nil
		}
	}()
	t.Cleanup(c.close)
	return c, resp{status: res.StatusCode, header: res.Header}
}

func (c *sseClient) close() {
	c.cancel()
	c.res.Body.Close()
	for range c.blocks { //nolint:revive // drain until the reader has stopped
	}
}

// next returns the next block within d; ok is false when the stream ended.
func (c *sseClient) next(t *testing.T, d time.Duration) (block []string, ok bool) {
	t.Helper()
	select {
	case b, ok := <-c.blocks:
		return b, ok
	case <-time.After(d):
		t.Fatalf("no block from the stream within %v", d)
		return nil, false
	}
}

// nextEvent skips pings and returns the data of the next usage event.
func (c *sseClient) nextEvent(t *testing.T, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		b, ok := c.next(t, time.Until(deadline))
		if !ok {
			t.Fatal("the stream ended")
		}
		if len(b) == 1 && b[0] == ": ping" {
			continue
		}
		if b[0] == "retry: 5000" {
			b = b[1:]
		}
		if len(b) != 2 || b[0] != "event: "+shared.StreamEvent || !strings.HasPrefix(b[1], "data: ") {
			t.Fatalf("block %q is not a usage event", b)
		}
		return strings.TrimPrefix(b[1], "data: ")
	}
}

func streamEnv(t *testing.T, f func(*Config)) (*env, string) {
	t.Helper()
	e := newEnv(t, withConfig(f))
	e.mustPost(snap("default", t0, 5))
	return e, e.listen()
}

// The stream sends GET latest's body at connect and after every stored
// snapshot of its account, promptly, with the headers DESIGN asks for.
func TestStreamEvents(t *testing.T) {
	t.Parallel()
	e, base := streamEnv(t, func(c *Config) { c.StreamPing = time.Hour })
	c, r := openStream(t, base)
	if c == nil {
		t.Fatalf("stream = %d %s", r.status, r.body)
	}
	for h, want := range map[string]string{
		"Content-Type": "text/event-stream", "X-Accel-Buffering": "no", "Cache-Control": "private, no-store",
	} {
		if got := r.header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	first, ok := c.next(t, 5*time.Second)
	if !ok || len(first) != 3 || first[0] != "retry: 5000" {
		t.Fatalf("first block = %q, want retry then the event", first)
	}
	if got, want := strings.TrimPrefix(first[2], "data: "), string(e.get(shared.PathUsage).body); got != want {
		t.Errorf("connect event =\n%s\nGET latest =\n%s", got, want)
	}
	if !strings.Contains(first[2], `"pace":`) {
		t.Errorf("the event has no pace: %s", first[2])
	}

	for i := range 3 {
		start := time.Now()
		e.mustPost(snap("default", t0.Add(time.Duration(i+1)*time.Second), float64(10+i)))
		got := c.nextEvent(t, 5*time.Second)
		if d := time.Since(start); d > time.Second {
			t.Errorf("event %d came %v after the POST, want within 1 s", i, d)
		}
		if want := string(e.get(shared.PathUsage).body); got != want {
			t.Errorf("event %d =\n%s\nGET latest =\n%s", i, got, want)
		}
	}

	// Another account's snapshot does not wake this stream: the next event
	// is this account's next version.
	e.mustPost(snap("other", t0, 1))
	e.mustPost(snap("default", t0.Add(time.Minute), 50))
	if got, want := c.nextEvent(t, 5*time.Second), string(e.get(shared.PathUsage).body); got != want {
		t.Errorf("after another account's POST the event =\n%s\nwant\n%s", got, want)
	}
	if got, want := e.srv.cfg.StreamPing, time.Hour; got != want {
		t.Errorf("StreamPing = %v", got)
	}
}

func TestStreamPingsAndOutlivesWriteTimeout(t *testing.T) {
	t.Parallel()
	const writeTimeout = 200 * time.Millisecond
	e, base := streamEnv(t, func(c *Config) { c.StreamPing = 50 * time.Millisecond; c.WriteTimeout = writeTimeout })
	c, r := openStream(t, base)
	if c == nil {
		t.Fatalf("stream = %d %s", r.status, r.body)
	}
	c.nextEvent(t, 5*time.Second)
	// Pings for several write timeouts: each write gets its own deadline.
	start := time.Now()
	pings := 0
	for time.Since(start) < 4*writeTimeout {
		b, ok := c.next(t, 5*time.Second)
		if !ok {
			t.Fatalf("the stream ended after %v (%d pings)", time.Since(start), pings)
		}
		if len(b) != 1 || b[0] != ": ping" {
			t.Fatalf("block %q, want a ping", b)
		}
		pings++
	}
	e.mustPost(snap("default", t0.Add(time.Second), 60))
	if got, want := c.nextEvent(t, 5*time.Second), string(e.get(shared.PathUsage).body); got != want {
		t.Errorf("event after %v of pings =\n%s\nwant\n%s", time.Since(start), got, want)
	}
}

// waitOpen waits (on a real socket, hence a bounded poll) until the hub
// counts n streams.
func waitOpen(t *testing.T, e *env, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.hub.open() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams open, want %d", e.srv.hub.open(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// At most --max-streams are open; a client that hangs up frees its place
// at once, without waiting for a write to fail.
func TestStreamLimit(t *testing.T) {
	t.Parallel()
	e, base := streamEnv(t, func(c *Config) { c.MaxStreams = 2; c.StreamPing = time.Hour })
	a, _ := openStream(t, base)
	b, _ := openStream(t, base)
	if a == nil || b == nil {
		t.Fatal("the first two streams were refused")
	}
	a.nextEvent(t, 5*time.Second)
	b.nextEvent(t, 5*time.Second)
	c, r := openStream(t, base)
	if c != nil {
		t.Fatal("a third stream was opened with --max-streams 2")
	}
	if eb := wantError(t, r, http.StatusServiceUnavailable, shared.CodeStreamLimit); !strings.Contains(eb.Message, "--max-streams") {
		t.Errorf("message %q does not name --max-streams", eb.Message)
	}
	a.close()
	waitOpen(t, e, 1)
	d, r := openStream(t, base)
	if d == nil {
		t.Fatalf("after a client left the stream = %d %s", r.status, r.body)
	}
	d.nextEvent(t, 5*time.Second)
}

// Shutdown ends every stream at once, well within its timeout.
func TestStreamShutdown(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		stop func(e *env) error
	}{
		{"fasthttp shutdown", func(e *env) error { return e.srv.App().ShutdownWithTimeout(5 * time.Second) }},
		{"EndStreams then shutdown", func(e *env) error {
			e.srv.EndStreams()
			return e.srv.App().ShutdownWithTimeout(5 * time.Second)
		}},
		{"Close", func(e *env) error { return e.srv.Close() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, base := streamEnv(t, func(c *Config) { c.StreamPing = time.Hour })
			var cs []*sseClient
			for range 3 {
				c, r := openStream(t, base)
				if c == nil {
					t.Fatalf("stream = %d %s", r.status, r.body)
				}
				c.nextEvent(t, 5*time.Second)
				cs = append(cs, c)
			}
			start := time.Now()
			if err := tt.stop(e); err != nil {
				t.Fatalf("stop: %v", err)
			}
			for i, c := range cs {
				if b, ok := c.next(t, 5*time.Second); ok {
					t.Errorf("stream %d sent %q after the stop, want its end", i, b)
				}
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("streams took %v to end", d)
			}
			waitOpen(t, e, 0)
			if tt.name != "fasthttp shutdown" {
				eb := wantError(t, e.get(shared.PathStream), http.StatusServiceUnavailable, shared.CodeStreamLimit)
				if !strings.Contains(eb.Message, "shutting down") {
					t.Errorf("message %q", eb.Message)
				}
			}
		})
	}
}

func TestStreamHeadAndNoData(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	wantError(t, e.get(shared.PathStream), http.StatusNotFound, shared.CodeNoData)
	if got := e.srv.hub.open(); got != 0 {
		t.Errorf("a refused stream holds a place: %d open", got)
	}
	e.mustPost(snap("default", t0, 5))
	r := e.do(http.MethodHead, shared.PathStream, "", "Authorization", "Bearer "+testToken)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/event-stream" || len(r.body) != 0 {
		t.Errorf("HEAD = %d %q %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	if got := e.srv.hub.open(); got != 0 {
		t.Errorf("HEAD holds a place: %d open", got)
	}
	if got, want := newEnv(t).srv.cfg.StreamPing, shared.StreamPing; got != want {
		t.Errorf("default StreamPing = %v, want %v", got, want)
	}
}

// The real binary: live events, its --max-streams, and SIGTERM ending
// every open stream at once, well within --shutdown-timeout.
func TestProcessStreams(t *testing.T) {
	t.Parallel()
	p := startServer(t, "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--api-key", testKey, "--read-token", testToken,
		"--web-dir", t.TempDir(), "--max-streams", "2", "--shutdown-timeout", "10s")
	base := "http://" + p.addr
	post := func(at time.Time, pct float64) {
		t.Helper()
		r := send(t, http.MethodPost, base+shared.PathUsage, snap("default", at, pct), "Content-Type", "application/json", shared.HeaderAPIKey, testKey)
		if r.status != http.StatusCreated {
			t.Fatalf("POST = %d %s", r.status, r.body)
		}
	}
	scraped := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	post(scraped, 10)
	a, _ := openStream(t, base)
	b, _ := openStream(t, base)
	if a == nil || b == nil {
		t.Fatal("a stream was refused")
	}
	a.nextEvent(t, 5*time.Second)
	b.nextEvent(t, 5*time.Second)
	if c, r := openStream(t, base); c != nil || r.status != http.StatusServiceUnavailable {
		t.Fatalf("third stream with --max-streams 2 = %d %s", r.status, r.body)
	}
	post(scraped.Add(time.Second), 20)
	for _, c := range []*sseClient{a, b} {
		var u shared.UsageResponse
		if err := json.Unmarshal([]byte(c.nextEvent(t, 5*time.Second)), &u); err != nil || u.Meters[0].PercentUsed != 20 || u.Meters[0].Pace == nil {
			t.Fatalf("event after the POST: %+v %v", u, err)
		}
	}
	start := time.Now()
	if err := p.stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.Log.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("SIGTERM with two open streams took %v to exit, want far less than the 10 s shutdown timeout", d)
	}
	for i, c := range []*sseClient{a, b} {
		if blk, ok := c.next(t, 5*time.Second); ok {
			t.Errorf("stream %d sent %q after the server stopped", i, blk)
		}
	}
	if strings.Contains(p.Log.String(), "shutdown did not finish in time") {
		t.Errorf("shutdown timed out:\n%s", p.Log.String())
	}
}

func TestHub(t *testing.T) {
	t.Parallel()
	h := newHub(3)
	a1, _ := h.subscribe("a")
	a2, _ := h.subscribe("a")
	b1, err := h.subscribe("b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.subscribe("c"); codeOfErr(err) != shared.CodeStreamLimit {
		t.Fatalf("a fourth stream with max 3: %v, want STREAM_LIMIT", err)
	}
	woken := func(s *streamSub) int {
		n := 0
		for {
			select {
			case <-s.wake:
				n++
			default:
				return n
			}
		}
	}
	h.publish("a")
	h.publish("a") // coalesces with the first: one event carries both
	for _, tt := range []struct {
		name string
		sub  *streamSub
		want int
	}{{"a1", a1, 1}, {"a2", a2, 1}, {"b1", b1, 0}} {
		if got := woken(tt.sub); got != tt.want {
			t.Errorf("%s woken %d times, want %d", tt.name, got, tt.want)
		}
	}
	h.unsubscribe(a1)
	h.unsubscribe(a1) // a second time changes nothing
	if got, want := h.open(), 2; got != want {
		t.Errorf("open = %d, want %d", got, want)
	}
	c1, err := h.subscribe("c")
	if err != nil {
		t.Fatalf("after a stream ended: %v", err)
	}
	h.close()
	h.close()
	for _, s := range []*streamSub{a2, b1, c1} {
		select {
		case <-s.done:
		default:
			t.Errorf("stream of %s not ended by close", s.account)
		}
	}
	if _, err := h.subscribe("a"); codeOfErr(err) != shared.CodeStreamLimit {
		t.Errorf("subscribe after close: %v, want STREAM_LIMIT", err)
	}
}

func codeOfErr(err error) shared.Code {
	if se, ok := err.(*shared.Error); ok {
		return se.Code
	}
	return ""
}

// A stream opened with a read token that a reload has rotated ends before
// it sends anything more; the new token opens a new one.
func TestStreamEndsWhenTheReadTokenRotates(t *testing.T) {
	t.Parallel()
	e, base := streamEnv(t, func(c *Config) { c.StreamPing = time.Hour })
	c, r := openStream(t, base)
	if c == nil {
		t.Fatalf("stream = %d %s", r.status, r.body)
	}
	c.nextEvent(t, 5*time.Second)
	const rotated = "read-token-rotated-0123456789"
	if err := e.srv.setKeys(testKey, rotated, ""); err != nil {
		t.Fatal(err)
	}
	e.mustPost(snap("default", t0.Add(time.Second), 70))
	if b, ok := c.next(t, 5*time.Second); ok {
		t.Fatalf("the old token's stream sent %q after the rotation", b)
	}
	waitOpen(t, e, 0)
	if got := e.get(shared.PathStream).status; got != http.StatusUnauthorized {
		t.Errorf("the old token opens a stream: %d", got)
	}
}
