package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConsoleLoggerWritesJSONLines(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	at := time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC)
	l := NewConsoleLogger(&buf, "widget", func() time.Time { return at })
	l.Warn("fetch retry", "attempt", 1, "delayMs", int64(2000), "category", "NETWORK", "error", errors.New("refused"))
	l.Info("odd", "dangling")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if got, want := len(lines), 2; got != want {
		t.Fatalf("lines = %d, want %d: %q", got, want, buf.String())
	}
	if got, want := lines[0], `{"time":"2026-11-28T14:00:00.000Z","level":"WARN","msg":"fetch retry","component":"widget","attempt":1,"delayMs":2000,"category":"NETWORK","error":"refused"}`; got != want {
		t.Errorf("line = %s\nwant   %s", got, want)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil {
		t.Fatalf("second line is not JSON: %v", err)
	}
	if m["!BADKEY"] != "dangling" {
		t.Errorf("dangling key = %v", m)
	}
}
