package store

import (
	"context"
	"sync"

	"github.com/claude-usage/widget/shared"
)

// Lifecycle is how a backend closes: calls that write register with Enter,
// background work runs under Go, and Close refuses new calls, waits for the
// ones in flight, then cancels Context and waits for the background work.
// Saves come before the cancel so that a save in flight still finishes its
// write check and its write.
type Lifecycle struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.RWMutex // guards closed against Enter and a probe starting
	closed   bool
	inflight sync.WaitGroup // calls between Enter and Leave
	bg       sync.WaitGroup // work started with Go, and write checks
}

// NewLifecycle returns an open Lifecycle.
func NewLifecycle() *Lifecycle {
	l := &Lifecycle{}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l
}

// Context ends when Close has waited for the calls in flight.
func (l *Lifecycle) Context() context.Context { return l.ctx }

// Enter registers a call; it fails with STORAGE_UNAVAILABLE once Close has
// begun. A nil error obliges the caller to call Leave.
func (l *Lifecycle) Enter() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return errClosed()
	}
	l.inflight.Add(1)
	return nil
}

// Leave ends a call that Enter registered.
func (l *Lifecycle) Leave() { l.inflight.Done() }

// Go runs fn as background work: fn must return once Context ends, and
// Close waits for it. Call it before Close, from background work, or
// between Enter and Leave.
func (l *Lifecycle) Go(fn func()) {
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		fn()
	}()
}

// whileOpen runs fn, which may call Go, unless Close has begun (then it
// fails as Enter does); Close waits for fn to return before it waits for
// anything. It is how a caller holding neither Enter nor background work
// starts background work that Close will still wait for.
func (l *Lifecycle) whileOpen(fn func()) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return errClosed()
	}
	fn()
	return nil
}

// Close is idempotent; only the first call waits, and only it returns
// true, so that the backend releases its resources once.
func (l *Lifecycle) Close() bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.closed = true
	l.mu.Unlock()
	l.inflight.Wait()
	l.cancel()
	l.bg.Wait()
	return true
}

func errClosed() error {
	return shared.Errorf(shared.CodeStorageUnavailable, "storage: the store is closed")
}
