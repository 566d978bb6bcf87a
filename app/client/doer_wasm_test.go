//go:build js && wasm

package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

// These run under Node, whose global fetch is the same API as the
// browser's: the requests are real, a data: URL for a response and a
// closed port on 127.0.0.1 for a refused connection.

func TestFetchDoerReadsResponse(t *testing.T) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet,
		`data:application/json,{"account":"default"}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := FetchDoer{}.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got, want := resp.StatusCode, 200; got != want {
		t.Errorf("status = %d, want %d", got, want)
	}
	if got, want := resp.Header.Get("Content-Type"), "application/json"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	b, _ := io.ReadAll(resp.Body)
	if got, want := string(b), `{"account":"default"}`; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
}

func TestFetchDoerRefusedIsNetwork(t *testing.T) {
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://127.0.0.1:1/", nil)
	_, err := FetchDoer{}.Do(req)
	if !errors.Is(err, ErrFetchFailed) {
		t.Fatalf("err = %v, want ErrFetchFailed", err)
	}
}

func TestFetchDoerHonoursCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:1/", nil)
	if _, err := (FetchDoer{}).Do(req); err == nil {
		t.Fatal("a cancelled request succeeded")
	}
}

func TestClientRetriesRefusedUnderNode(t *testing.T) {
	var sleeps []time.Duration
	c, err := New(Config{
		BaseURL: "http://127.0.0.1:1",
		Sleep: func(ctx context.Context, d time.Duration) error {
			sleeps = append(sleeps, d)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	res := c.Fetch(context.Background(), Request{})
	if got, want := res.Kind, KindUnavailable; got != want {
		t.Fatalf("kind = %v, want %v", got, want)
	}
	if got, want := res.Category, shared.CategoryNetwork; got != want {
		t.Errorf("category = %q, want %q (err %v)", got, want, res.Err)
	}
	if got, want := res.Attempts, 3; got != want {
		t.Errorf("attempts = %d, want %d", got, want)
	}
	if len(sleeps) != 2 || sleeps[0] != 2*time.Second || sleeps[1] != 2*time.Second {
		t.Errorf("waits = %v, want [2s 2s]", sleeps)
	}
	if got, want := c.Breaker().Failures(), 1; got != want {
		t.Errorf("breaker failures = %d, want %d", got, want)
	}
}
