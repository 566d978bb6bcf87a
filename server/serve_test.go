package server

import (
	"context"
	"net"
	"testing"
	"time"
)

// A stop that arrives before the server has started serving its listener
// still ends serve within the timeout (the process used to hang on a
// SIGTERM right after start).
func TestServeStoppedBeforeItStarts(t *testing.T) {
	for i := range 20 {
		e := newEnv(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- serve(ctx, e.srv, ln, 2*time.Second, e.log) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: serve = %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("run %d: serve did not return after a stop before it started", i)
		}
	}
}
