// Package logbuf batches log output into fewer writes. Under load the
// server's access log, one write(2) per request, cost more CPU than the
// request itself; batched, a line waits at most the flush interval. Lines at
// Warn and above are written at once (Handler), so a problem is never held
// back, and Close writes whatever is left.
package logbuf

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// DefaultInterval is how long an info line may wait in the buffer.
const DefaultInterval = 100 * time.Millisecond

// Writer is an io.Writer that buffers and flushes every interval, when the
// buffer fills, on Flush and on Close. It is safe for concurrent use. A
// failed write drops what was buffered (counted in Dropped) and the Writer
// carries on, like an unbuffered logger that loses the failing line: one
// EAGAIN on stderr must not silence the log for the rest of the process.
type Writer struct {
	mu      sync.Mutex
	out     io.Writer
	bw      *bufio.Writer
	closed  bool // writes go straight to out
	dirty   bool
	dropped int64
	cancel  context.CancelFunc
	done    chan struct{}
}

// New starts a Writer over w that flushes every interval (DefaultInterval
// if <= 0) until Close.
func New(w io.Writer, interval time.Duration) *Writer {
	if interval <= 0 {
		interval = DefaultInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Writer{out: w, bw: bufio.NewWriterSize(w, 64<<10), cancel: cancel, done: make(chan struct{})}
	go b.loop(ctx, interval)
	return b
}

func (b *Writer) loop(ctx context.Context, interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = b.Flush()
		}
	}
}

// failed drops the buffer after a write error. The caller holds mu.
func (b *Writer) failed(err error) error {
	b.dropped += int64(b.bw.Buffered())
	b.bw.Reset(b.out)
	b.dirty = false
	return err
}

// Write buffers p; a line longer than the buffer goes straight through.
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.out.Write(p)
	}
	n, err := b.bw.Write(p)
	if err != nil {
		b.dropped += int64(len(p) - n)
		return n, b.failed(err)
	}
	b.dirty = true
	return n, nil
}

// Flush writes what is buffered.
func (b *Writer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

func (b *Writer) flushLocked() error {
	if !b.dirty {
		return nil
	}
	b.dirty = false
	if err := b.bw.Flush(); err != nil {
		return b.failed(err)
	}
	return nil
}

// Dropped is the number of bytes lost to write errors so far.
func (b *Writer) Dropped() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}

// Close stops the flush loop and writes what is left. Writes after Close
// go straight through, so a late log line is not lost either.
func (b *Writer) Close() error {
	b.cancel()
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.flushLocked()
	b.closed = true
	return err
}

// Handler wraps h so that records at Warn and above are flushed as soon as
// they are written.
func Handler(h slog.Handler, w *Writer) slog.Handler { return &handler{h, w} }

type handler struct {
	slog.Handler
	w *Writer
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		if ferr := h.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{h.Handler.WithAttrs(as), h.w}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{h.Handler.WithGroup(name), h.w}
}
