package server

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

// TestProcessRestartMidQueueNoDuplicate: the real binary, its webhook
// down; the process is stopped right after the first failed attempt and
// started again on the same data directory once the webhook is back. The
// alert arrives exactly once, and a third start sends nothing.
func TestProcessRestartMidQueueNoDuplicate(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	down, attempts := true, 0
	var accepted []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if down {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		accepted = append(accepted, r.Header.Get(shared.HeaderIdempotencyKey))
	}))
	defer hook.Close()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			mu.Lock()
			done := ok()
			mu.Unlock()
			if done {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	dir := t.TempDir()
	args := []string{"--addr", "127.0.0.1:0", "--data-dir", dir, "--api-key", testKey, "--read-token", testToken,
		"--web-dir", t.TempDir(), "--alert-webhook", hook.URL, "--alert-kinds", "threshold"}

	p := startServer(t, args...)
	body := snap("default", time.Now().UTC().Add(-time.Minute).Truncate(time.Second), 91)
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.addr+shared.PathUsage, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(shared.HeaderAPIKey, testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
	waitFor("the first failed attempt", func() bool { return attempts >= 1 })
	if err := p.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, p.Log)
	}

	mu.Lock()
	down = false
	mu.Unlock()
	p = startServer(t, args...)
	waitFor("the delivery after the restart", func() bool { return len(accepted) >= 1 })
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	p = startServer(t, args...)
	// The queue gauge appears once the start's drain has finished: by then
	// a duplicate would have been sent.
	base := "http://" + p.addr
	waitFor("the third start's drain", func() bool {
		r, err := http.Get(base + shared.PathMetrics)
		if err != nil {
			return false
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return strings.Contains(string(b), `usage_alert_queue_length{channel="webhook"} 0`)
	})
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(accepted) != 1 || len(accepted[0]) != 64 {
		t.Errorf("the webhook accepted %q, want exactly one alert id", accepted)
	}
}
