//go:build !(js && wasm)

package app

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// In a synctest bubble the ticker runs on the fake clock; the bubble fails
// the test if Every's goroutine outlives its context.
func TestEveryStopsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var n atomic.Int32
		Every(ctx, time.Second, func() { n.Add(1) })
		time.Sleep(3*time.Second + time.Millisecond)
		if got, want := n.Load(), int32(3); got != want {
			t.Errorf("calls after 3 s = %d, want %d", got, want)
		}
		cancel()
		synctest.Wait()
		time.Sleep(time.Minute)
		if got, want := n.Load(), int32(3); got != want {
			t.Errorf("calls after the context ended = %d, want %d", got, want)
		}
	})
}

func TestEveryIgnoresNonPositivePeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		Every(context.Background(), 0, func() { t.Error("called with a zero period") })
		Every(context.Background(), -time.Second, func() { t.Error("called with a negative period") })
		time.Sleep(time.Hour)
	})
}
