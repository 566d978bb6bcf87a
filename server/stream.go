package server

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/claude-usage/widget/shared"
)

// hub fans stored snapshots out to the open streams. It is fed by
// Store.Subscribe, so a store shared by several replicas (PostgreSQL's
// LISTEN/NOTIFY) reaches the streams of every replica the same way the
// file store reaches this one's. It also bounds the open streams.
type hub struct {
	mu     sync.Mutex
	max    int
	n      int
	closed bool
	subs   map[string]map[*streamSub]struct{}
}

// streamSub is one open stream's place in the hub.
type streamSub struct {
	account string
	wake    chan struct{} // buffered 1: a burst of saves is one event
	done    chan struct{} // closed when the server closes
}

func newHub(maxStreams int) *hub {
	return &hub{max: maxStreams, subs: make(map[string]map[*streamSub]struct{})}
}

// subscribe takes a stream slot for account, or fails with STREAM_LIMIT.
func (h *hub) subscribe(account string) (*streamSub, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, shared.Errorf(shared.CodeStreamLimit, "the server is shutting down; no new streams")
	}
	if h.n >= h.max {
		return nil, shared.Errorf(shared.CodeStreamLimit, "the server has its most streams open (%d, --max-streams)", h.max)
	}
	sub := &streamSub{account: account, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if h.subs[account] == nil {
		h.subs[account] = make(map[*streamSub]struct{})
	}
	h.subs[account][sub] = struct{}{}
	h.n++
	return sub, nil
}

func (h *hub) unsubscribe(sub *streamSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if m := h.subs[sub.account]; m != nil {
		if _, ok := m[sub]; ok {
			delete(m, sub)
			h.n--
		}
		if len(m) == 0 {
			delete(h.subs, sub.account)
		}
	}
}

// publish wakes the account's streams; it never blocks (Store.Subscribe's
// rule), and a stream still busy with the last event sends one more.
func (h *hub) publish(account string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[account] {
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
}

// close ends every stream and refuses new ones.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for _, m := range h.subs {
		for sub := range m {
			close(sub.done)
		}
	}
}

// open is the number of open streams.
func (h *hub) open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// EndStreams ends every open stream and refuses new ones (503
// STREAM_LIMIT). Shutdown calls it first: an open stream would otherwise
// hold its connection until the shutdown timeout.
func (s *Server) EndStreams() { s.hub.close() }

// getStream is GET …/stream: server-sent events carrying GET latest's body
// at connect and after every stored snapshot of the account. The token
// comes in the Authorization header only (parseQuery refuses one in the
// query). An account without data is GET latest's 404, not a stream.
func (s *Server) getStream(c *fiber.Ctx) error {
	q, err := parseQuery(c, "account")
	if err != nil {
		return err
	}
	account, err := parseAccount(q)
	if err != nil {
		return err
	}
	sub, err := s.hub.subscribe(account)
	if err != nil {
		return err
	}
	first, err := s.latestAnswer(c.UserContext(), account)
	if err != nil {
		s.hub.unsubscribe(sub)
		return err
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "private, no-store")
	c.Set("X-Accel-Buffering", "no") // nginx would hold events back
	if c.Method() == fiber.MethodHead {
		s.hub.unsubscribe(sub)
		return c.SendStatus(fiber.StatusOK)
	}
	fctx := c.Context()
	// The stream ends the connection: nothing can follow it on the same
	// connection, and a closed connection is what ends the watcher below.
	fctx.Response.SetConnectionClose()
	conn, shutdown, token := fctx.Conn(), fctx.Done(), s.keys().read
	fctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		s.stream(w, conn, sub, first.body, shutdown, token)
	})
	return nil
}

// stream writes the events until the client goes, the server shuts down,
// a write fails or the read token it was opened with is no longer the one
// in force (a SIGHUP reload rotated it: the client must reconnect with the
// new one). It runs on fasthttp's stream goroutine, after the handler has
// returned.
func (s *Server) stream(w *bufio.Writer, conn net.Conn, sub *streamSub, first string, shutdown <-chan struct{}, token string) {
	defer s.hub.unsubscribe(sub)
	gone, stopWatch := watchConn(conn)
	defer stopWatch()
	write := func(chunk string) bool {
		// The server's write timeout was set once for the whole answer;
		// each event gets its own, so a long stream lives while a stuck
		// client is still dropped.
		if conn != nil {
			_ = conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		}
		if _, err := w.WriteString(chunk); err != nil {
			return false
		}
		// A client that has gone shows as a failed flush: fasthttp closes
		// the pipe behind w when writing to the connection fails.
		return w.Flush() == nil
	}
	if !write("retry: " + strconv.Itoa(shared.StreamRetryMillis) + "\n" + usageEvent(first)) {
		return
	}
	ping := time.NewTicker(s.cfg.StreamPing)
	defer ping.Stop()
	for {
		select {
		case <-shutdown:
			return
		case <-sub.done:
			return
		case <-gone:
			return
		case <-ping.C:
			if s.keys().read != token || !write(": ping\n\n") {
				return
			}
		case <-sub.wake:
			if s.keys().read != token {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
			ans, err := s.latestAnswer(ctx, sub.account)
			cancel()
			if err != nil {
				// The next save or the client's reconnect tries again.
				s.log.Warn("stream could not read the latest snapshot", "account", sub.account, "error", err.Error())
				continue
			}
			if !write(usageEvent(ans.body)) {
				return
			}
		}
	}
}

// usageEvent is one SSE event; body is JSON on one line (encoding/json
// escapes newlines in strings).
func usageEvent(body string) string {
	return fmt.Sprintf("event: %s\ndata: %s\n\n", shared.StreamEvent, body)
}

// watchConn notices a client hanging up without waiting for the next
// write to fail: an event-stream client sends nothing after its request,
// so a read on the connection returns only when it closes. stop ends the
// read (a deadline in the past) and waits for it.
func watchConn(conn net.Conn) (gone <-chan struct{}, stop func()) {
	ch := make(chan struct{})
	if conn == nil {
		return ch, func() {}
	}
	// The server's read timeout was for reading the request; the watch
	// lasts as long as the stream.
	_ = conn.SetReadDeadline(time.Time{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var b [1]byte
		_, _ = conn.Read(b[:])
		close(ch)
	}()
	return ch, func() {
		_ = conn.SetReadDeadline(time.Now())
		<-done
	}
}
