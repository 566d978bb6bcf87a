package store

import (
	"testing"
	"testing/synctest"

	"github.com/claude-usage/widget/shared"
)

// TestLifecycleCloseOrder: Close refuses new calls at once, cancels
// Context only after the calls in flight left, and returns only after the
// background work stopped.
func TestLifecycleCloseOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLifecycle()
		if err := l.Enter(); err != nil {
			t.Fatalf("Enter before Close: %v", err)
		}
		stopped := false
		l.Go(func() {
			<-l.Context().Done()
			stopped = true
		})
		closed := make(chan bool)
		go func() { closed <- l.Close() }()
		synctest.Wait()

		select {
		case <-closed:
			t.Fatal("Close returned while a call was in flight")
		default:
		}
		if err := l.Context().Err(); err != nil {
			t.Fatalf("Context ended while a call was in flight: %v", err)
		}
		if got, want := codeOf(l.Enter()), shared.CodeStorageUnavailable; got != want {
			t.Errorf("Enter during Close: code %q, want %q", got, want)
		}
		ran := false
		if got, want := codeOf(l.whileOpen(func() { ran = true })), shared.CodeStorageUnavailable; got != want || ran {
			t.Errorf("whileOpen during Close: code %q (ran %v), want %q without running", got, ran, want)
		}

		l.Leave()
		if got, want := <-closed, true; got != want {
			t.Errorf("first Close = %v, want %v", got, want)
		}
		if !stopped {
			t.Error("Close returned before the background work stopped")
		}
		if got, want := l.Close(), false; got != want {
			t.Errorf("second Close = %v, want %v", got, want)
		}
		if got, want := codeOf(l.Enter()), shared.CodeStorageUnavailable; got != want {
			t.Errorf("Enter after Close: code %q, want %q", got, want)
		}
	})
}
