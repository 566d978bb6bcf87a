package testutil

import (
	"encoding/json"
	"strings"
	"testing"
)

// LogRecords parses logs as JSON lines (slog's JSONHandler) and returns
// the records whose msg is msg; a line that is not JSON fails the test.
func LogRecords(t testing.TB, logs, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}
