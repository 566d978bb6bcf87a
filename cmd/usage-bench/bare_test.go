//go:build linux

package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-usage/widget/bench/load"
)

// addrWriter hands over the address from the "listening on" line.
type addrWriter struct {
	once sync.Once
	addr chan string
}

func (w *addrWriter) Write(p []byte) (int, error) {
	if a, ok := strings.CutPrefix(strings.TrimSpace(string(p)), "listening on "); ok {
		w.once.Do(func() { w.addr <- a })
	}
	return len(p), nil
}

func TestBareServerAnswersTheCapturedBytes(t *testing.T) {
	dir := t.TempDir()
	entries := []bareEntry{
		{Path: "/api/health", ContentType: "application/json", File: "h.body"},
		{Path: "/api/claude/console-usage", ContentType: "application/json; charset=utf-8", File: "l.body"},
		{Path: "/api/claude/console-usage", Query: "timestamp=2026-11-25T10%3A00%3A30Z", ContentType: "application/json", File: "t.body"},
		{Path: "/api/claude/console-usage", Method: http.MethodPost, Status: http.StatusCreated, ContentType: "application/json", File: "p.body",
			Headers: [][2]string{{"X-Request-Id", "r1"}}},
	}
	bodies := [][]byte{[]byte(`{"status":"ok"}`), []byte(`{"latest":true}`), []byte(`{"nearest":true}`), []byte(`{"success":true}`)}
	if err := writeBareManifest(dir, entries, bodies); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &addrWriter{addr: make(chan string, 1)}
	done := make(chan error, 1)
	go func() { done <- runBareServer(ctx, []string{"--addr", "127.0.0.1:0", "--dir", dir}, out, io.Discard) }()
	var addr string
	select {
	case addr = <-out.addr:
	case err := <-done:
		t.Fatalf("bare server ended: %v", err)
	}

	for i, e := range entries {
		target := e.Path
		if e.Query != "" {
			target += "?" + e.Query
		}
		method, status := http.MethodGet, http.StatusOK
		if e.Method != "" {
			method, status = e.Method, e.Status
		}
		req, _ := http.NewRequest(method, "http://"+addr+target, strings.NewReader(`{"any":"body"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status || string(body) != string(bodies[i]) || resp.Header.Get("Content-Type") != e.ContentType {
			t.Errorf("%s %s: %d %q %q, want %d %q", method, target, resp.StatusCode, body, resp.Header.Get("Content-Type"), status, bodies[i])
		}
		for _, h := range e.Headers {
			if got := resp.Header.Get(h[0]); got != h[1] {
				t.Errorf("%s %s: %s %q, want %q", method, target, h[0], got, h[1])
			}
		}
	}
	if resp, err := http.Get("http://" + addr + "/api/claude/console-usage?timestamp=other"); err != nil || resp.StatusCode != 404 {
		t.Errorf("unknown query: %v %v", resp, err)
	}
	// The load generator reads its answers (keep-alive).
	res, err := load.Run(ctx, load.Options{URL: "http://" + addr + entries[2].Path + "?" + entries[2].Query, Conns: 2, Requests: 200})
	if err != nil || res.StatusCounts[200] != 200 || res.Errors != 0 {
		t.Errorf("load: %v %v errors %d (%s)", err, res.StatusCounts, res.Errors, res.FirstError)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("bare server: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("bare server did not stop with its ctx")
	}
}

func TestBareServerNeedsDir(t *testing.T) {
	if err := runBareServer(context.Background(), nil, io.Discard, io.Discard); err == nil {
		t.Error("no error without --dir")
	}
}

func TestHTTPRowsShowBadResponses(t *testing.T) {
	env := &Env{Conns: 16, Rounds: 2, Duration: 2 * time.Second}
	good := load.Result{Requests: 1000, RPS: 1000, StatusCounts: map[int]int{200: 1000}, P99: time.Millisecond}
	limited := load.Result{Requests: 1000, RPS: 900, Errors: 2, FirstError: "load: boom",
		StatusCounts: map[int]int{200: 990, 429: 10}, P99: time.Millisecond}
	rows := httpRows(env, httpTarget{name: "GET latest", inBudget: true}, limited, good)
	if len(rows) != 2 || *rows[0].Met || *rows[1].Met {
		t.Fatalf("rows %+v: a run with 429s must not meet a budget", rows)
	}
	for _, want := range []string{"429×10", "2 errors", "load: boom"} {
		if !strings.Contains(rows[0].Note, want) {
			t.Errorf("note %q lacks %q", rows[0].Note, want)
		}
	}
	rows = httpRows(env, httpTarget{name: "GET latest", inBudget: true}, good, good)
	if !*rows[0].Met || !*rows[1].Met || rows[0].Ratio != "1.00x" {
		t.Errorf("clean equal runs: %+v", rows)
	}
}

func TestHTTPCPURow(t *testing.T) {
	target := httpTarget{name: "GET latest"}
	for _, c := range []struct {
		name                 string
		real, bare           httpCPU
		realN, bareN         int
		value, baseline, rat string
	}{
		{"both read", httpCPU{srv: 30 * time.Millisecond, gen: 50 * time.Millisecond}, httpCPU{srv: 40 * time.Millisecond}, 1000, 2000, "30µs", "20µs", "1.50x"},
		{"no requests", httpCPU{srv: time.Second}, httpCPU{srv: time.Second}, 0, 10, "?", "100000µs", ""},
		{"CPU unreadable", httpCPU{}, httpCPU{srv: time.Second}, 10, 10, "?", "100000µs", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httpCPURow(target, c.real, c.bare, c.realN, c.bareN)
			if r.Value != c.value || r.Baseline != c.baseline || r.Ratio != c.rat || r.Met != nil {
				t.Errorf("row %+v, want value %q baseline %q ratio %q and no budget", r, c.value, c.baseline, c.rat)
			}
		})
	}
}
