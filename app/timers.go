package app

import (
	"context"
	"time"
)

// Every calls f every d on its own goroutine until ctx ends. f must not
// block: the widget's f only queues a dispatch.
func Every(ctx context.Context, d time.Duration, f func()) {
	if d <= 0 {
		return
	}
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f()
			}
		}
	}()
}
