package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// ConsoleLogger writes one JSON object per line, with the fields of the
// server's slog lines (time, level, msg, component, then the event's
// key-value pairs in order). In the browser its writer is os.Stdout, which
// wasm_exec.js prints with console.log. It replaces log/slog in app.wasm to
// stay within the size budget.
type ConsoleLogger struct {
	mu        sync.Mutex
	w         io.Writer
	component string
	now       func() time.Time
}

// NewConsoleLogger logs to w; now is the clock (time.Now when nil).
func NewConsoleLogger(w io.Writer, component string, now func() time.Time) *ConsoleLogger {
	if now == nil {
		now = time.Now
	}
	return &ConsoleLogger{w: w, component: component, now: now}
}

func (l *ConsoleLogger) Info(msg string, args ...any)  { l.log("INFO", msg, args) }
func (l *ConsoleLogger) Warn(msg string, args ...any)  { l.log("WARN", msg, args) }
func (l *ConsoleLogger) Error(msg string, args ...any) { l.log("ERROR", msg, args) }

func (l *ConsoleLogger) log(level, msg string, args []any) {
	var b bytes.Buffer
	b.WriteByte('{')
	field := func(k string, v any) {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		switch x := v.(type) {
		case error:
			v = x.Error()
		case time.Time:
			v = x.UTC().Format(time.RFC3339Nano)
		case time.Duration:
			v = x.String()
		case fmt.Stringer:
			v = x.String()
		}
		vb, err := json.Marshal(v)
		if err != nil {
			vb, _ = json.Marshal(fmt.Sprint(v))
		}
		b.Write(vb)
	}
	field("time", l.now().UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	field("level", level)
	field("msg", msg)
	if l.component != "" {
		field("component", l.component)
	}
	for i := 0; i < len(args); i += 2 {
		k, ok := args[i].(string)
		if !ok {
			k = fmt.Sprint(args[i])
		}
		if i+1 < len(args) {
			field(k, args[i+1])
		} else {
			field("!BADKEY", k)
		}
	}
	b.WriteString("}\n")
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(b.Bytes())
}
