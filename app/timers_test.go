//go:build !(js && wasm)

package app

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestEveryStopsWithItsContext(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	fired := make(chan struct{}, 1)
	Every(ctx, time.Millisecond, func() {
		if n.Add(1) == 2 {
			fired <- struct{}{}
		}
	})
	<-fired // it repeats
	cancel()
	// goleak waits for the goroutine to end; a ticker that outlived its
	// context would fail here.
}

func TestEveryIgnoresNonPositivePeriod(t *testing.T) {
	defer goleak.VerifyNone(t)
	Every(context.Background(), 0, func() { t.Error("called with a zero period") })
}
