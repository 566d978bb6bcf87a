//go:build js && wasm

package app

import (
	"bytes"
	"sync"
	"syscall/js"
)

// consoleWriter prints each line written to it with console.log, in a
// later browser task. Writing to os.Stdout instead makes wasm_exec.js
// decode and print it inside the Go call that logs: the widget's start-up
// lines ("widget starting", "token taken…", "showing cached data") cost
// about 40 ms of the first render's task when DevTools listens, as
// Lighthouse does. A log line may wait one task; none is lost or
// reordered.
type consoleWriter struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	scheduled bool
	flushFn   js.Func
	setTimer  js.Value
	log       js.Value
}

// newConsoleWriter calls log (the page's console.log) with each line.
func newConsoleWriter(log js.Value) *consoleWriter {
	w := &consoleWriter{setTimer: js.Global().Get("setTimeout"), log: log}
	// Lives as long as the page: released never, created once.
	w.flushFn = js.FuncOf(func(js.Value, []js.Value) any {
		w.flush()
		return nil
	})
	return w
}

func (w *consoleWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.scheduled {
		w.scheduled = true
		w.setTimer.Invoke(w.flushFn, 0)
	}
	return len(p), nil
}

// flush prints every complete line; a partial one waits for its newline.
func (w *consoleWriter) flush() {
	w.mu.Lock()
	w.scheduled = false
	var lines []string
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			// No newline yet: keep the rest for the next write.
			rest := []byte(line)
			w.buf.Reset()
			w.buf.Write(rest)
			break
		}
		lines = append(lines, line[:len(line)-1])
	}
	w.mu.Unlock()
	for _, l := range lines {
		w.log.Invoke(l)
	}
}
