//go:build js && wasm

package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"syscall/js"
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

// synctest cannot reach fetch's callbacks (they run outside any bubble), so
// this one runs on the real clock with a 1 ms retry delay; the schedule
// itself is the host tests' job (client_test.go).
func TestClientRetriesRefusedUnderNode(t *testing.T) {
	const delay = time.Millisecond
	c, err := New(Config{BaseURL: "http://127.0.0.1:1", RetryDelay: delay})
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	res := c.Fetch(context.Background(), Request{OnRetry: func(e RetryEvent) { waits = append(waits, e.Delay) }})
	if got, want := res.Kind, KindUnavailable; got != want {
		t.Fatalf("kind = %v, want %v", got, want)
	}
	if got, want := res.Category, shared.CategoryNetwork; got != want {
		t.Errorf("category = %q, want %q (err %v)", got, want, res.Err)
	}
	if got, want := res.Attempts, 3; got != want {
		t.Errorf("attempts = %d, want %d", got, want)
	}
	if len(waits) != 2 || waits[0] != delay || waits[1] != delay {
		t.Errorf("waits = %v, want [1ms 1ms]", waits)
	}
	if got, want := c.Breaker().Failures(), 1; got != want {
		t.Errorf("breaker failures = %d, want %d", got, want)
	}
}

// setPrefetch plays web/prefetch.js: a finished request for url with auth,
// started ageMs ago. It returns a func that reports whether abort was
// called.
func setPrefetch(t *testing.T, url, auth string, ageMs float64, body string) func() bool {
	t.Helper()
	g := js.Global()
	aborted := false
	abort := js.FuncOf(func(js.Value, []js.Value) any { aborted = true; return nil })
	t.Cleanup(abort.Release)
	init := g.Get("Object").New()
	hdr := g.Get("Object").New()
	hdr.Set("Content-Type", "application/json")
	init.Set("status", 200)
	init.Set("headers", hdr)
	resp := g.Get("Response").New(body, init)
	p := g.Get("Object").New()
	p.Set("url", url)
	p.Set("auth", auth)
	p.Set("at", g.Get("Date").Call("now").Float()-ageMs)
	p.Set("abort", abort)
	p.Set("response", g.Get("Promise").Call("resolve", resp))
	g.Set("__usagePrefetch", p)
	t.Cleanup(func() { g.Set("__usagePrefetch", js.Undefined()) })
	return func() bool { return aborted }
}

// The request web/prefetch.js started is this request's first answer only
// when it is exactly this request and recent; it is used once. The server
// behind 127.0.0.1:1 refuses everything, so an answer proves the prefetch
// was used and a refusal proves it was not.
func TestFetchDoerTakesTheMatchingPrefetch(t *testing.T) {
	const auth = "Bearer tok"
	do := func(target, authz string) (string, error) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://127.0.0.1:1"+target, nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := FetchDoer{}.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
	tests := []struct {
		name, url, auth string
		ageMs           float64
		target, authz   string
		wantUsed        bool
	}{
		{"same request", shared.PathUsage, auth, 50, shared.PathUsage, auth, true},
		{"same account", shared.PathUsage + "?account=a%40b", auth, 50, shared.PathUsage + "?account=a%40b", auth, true},
		{"other account", shared.PathUsage, auth, 50, shared.PathUsage + "?account=work", auth, false},
		{"other token", shared.PathUsage, auth, 50, shared.PathUsage, "Bearer other", false},
		{"no token here", shared.PathUsage, auth, 50, shared.PathUsage, "", false},
		{"too old", shared.PathUsage, auth, 11000, shared.PathUsage, auth, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aborted := setPrefetch(t, tt.url, tt.auth, tt.ageMs, `{"prefetched":true}`)
			body, err := do(tt.target, tt.authz)
			if tt.wantUsed {
				if err != nil || body != `{"prefetched":true}` {
					t.Fatalf("the matching prefetch was not used: body %q, err %v", body, err)
				}
				if _, err := do(tt.target, tt.authz); !errors.Is(err, ErrFetchFailed) {
					t.Errorf("the prefetch was used twice: second answer err %v", err)
				}
				return
			}
			if !errors.Is(err, ErrFetchFailed) {
				t.Fatalf("a prefetch that is not this request was used: body %q, err %v", body, err)
			}
			if !aborted() {
				t.Error("the unused prefetch was not aborted")
			}
			if p := js.Global().Get("__usagePrefetch"); !p.IsUndefined() {
				t.Error("the unused prefetch was left for a later request")
			}
		})
	}
}
