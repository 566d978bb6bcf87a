package logbuf

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// sink records what reached the underlying writer, and in how many writes.
type sink struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
	err    error
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	s.writes++
	return s.b.Write(p)
}

func (s *sink) get() (string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String(), s.writes
}

func TestLinesWaitAtMostTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &sink{}
		w := New(out, 100*time.Millisecond)
		defer w.Close()
		for i := range 50 {
			if _, err := w.Write([]byte("line\n")); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
		if got, _ := out.get(); got != "" {
			t.Fatalf("written before the interval: %q", got)
		}
		time.Sleep(99 * time.Millisecond)
		synctest.Wait()
		if got, _ := out.get(); got != "" {
			t.Fatalf("written before the interval: %q", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		got, writes := out.get()
		if got != strings.Repeat("line\n", 50) || writes != 1 {
			t.Fatalf("after the interval: %d bytes in %d writes, want 250 bytes in 1", len(got), writes)
		}
	})
}

func TestWarnIsWrittenAtOnceAndCloseFlushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &sink{}
		w := New(out, time.Hour)
		log := slog.New(Handler(slog.NewJSONHandler(w, nil), w)).With("component", "test")
		log.Info("request", "status", 200)
		if got, _ := out.get(); got != "" {
			t.Fatalf("an info line was written at once: %q", got)
		}
		log.Warn("disk almost full")
		got, _ := out.get()
		if !strings.Contains(got, `"msg":"request"`) || !strings.Contains(got, `"msg":"disk almost full"`) {
			t.Fatalf("a warning did not flush the buffer: %q", got)
		}
		log.Info("shutting down")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got, _ := out.get(); !strings.Contains(got, "shutting down") {
			t.Fatalf("Close did not write the last line: %q", got)
		}
		log.WithGroup("g").Info("after close")
		if got, _ := out.get(); !strings.Contains(got, "after close") {
			t.Fatalf("a line after Close was lost: %q", got)
		}
		// The flush loop has stopped: synctest fails the test if a
		// goroutine of the bubble is still running here.
	})
}

// A write error loses what was buffered, says so, and the log goes on.
func TestWriteErrorDropsOnlyWhatFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &sink{err: errors.New("stderr busy")}
		w := New(out, time.Hour)
		_, _ = w.Write([]byte("lost\n"))
		if err := w.Flush(); err == nil {
			t.Fatal("Flush hid the write error")
		}
		if got := w.Dropped(); got != 5 {
			t.Errorf("Dropped = %d, want 5", got)
		}
		out.mu.Lock()
		out.err = nil
		out.mu.Unlock()
		if _, err := w.Write([]byte("kept\n")); err != nil {
			t.Fatalf("a write after the error failed: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got, _ := out.get(); got != "kept\n" {
			t.Errorf("written %q, want only the line after the error", got)
		}
	})
}

func TestLongLineGoesThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &sink{}
		w := New(out, time.Hour)
		defer w.Close()
		long := bytes.Repeat([]byte("x"), 100<<10)
		if n, err := w.Write(long); err != nil || n != len(long) {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if got, _ := out.get(); len(got) != len(long) {
			t.Fatalf("a line longer than the buffer waited: %d bytes written", len(got))
		}
	})
}
