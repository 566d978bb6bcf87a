package server

import (
	"net/http"
	"testing"

	"github.com/claude-usage/widget/shared"
)

func TestUnknownMethodGetsErrorBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{shared.PathHealth, shared.PathUsage, "/"} {
		t.Run(path, func(t *testing.T) {
			r := e.do("FOO", path, "")
			wantError(t, r, http.StatusMethodNotAllowed, shared.CodeMethodNotAllowed)
		})
	}
}

func TestProcessUnknownMethodGetsErrorBody(t *testing.T) {
	t.Parallel()
	p := startServer(t, "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--api-key", testKey,
		"--read-token", testToken, "--web-dir", t.TempDir())
	r := send(t, "FOO", "http://"+p.addr+shared.PathHealth, "")
	wantError(t, r, http.StatusMethodNotAllowed, shared.CodeMethodNotAllowed)
	// The server still answers normally afterwards.
	if r := send(t, http.MethodGet, "http://"+p.addr+shared.PathHealth, ""); r.status != http.StatusServiceUnavailable {
		t.Errorf("health after FOO = %d, want 503 (no data yet)", r.status)
	}
}
