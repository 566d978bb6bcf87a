//go:build js && wasm

package client

import (
	"context"
	"encoding/json"
	"errors"
	"syscall/js"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

// fakeStreamFetch replaces the global fetch for the test with one that
// answers a text/event-stream whose ReadableStream the test feeds
// (globalThis.__feed(text), __end()), and records an abort.
func fakeStreamFetch(t *testing.T) {
	t.Helper()
	g := js.Global()
	old := g.Get("fetch")
	g.Set("__feed", js.Undefined())
	g.Call("eval", `globalThis.fetch = (url, opts) => {
		globalThis.__url = url; globalThis.__auth = opts.headers.get("Authorization"); globalThis.__aborted = false;
		const body = new ReadableStream({ start(c) {
			globalThis.__feed = (s) => c.enqueue(new TextEncoder().encode(s));
			globalThis.__end = () => c.close();
			opts.signal.addEventListener("abort", () => { globalThis.__aborted = true; try { c.error(new Error("aborted")); } catch (e) {} });
		}});
		return Promise.resolve(new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } }));
	}`)
	t.Cleanup(func() { g.Set("fetch", old) })
}

func feed(s string) { js.Global().Call("__feed", s) }

// The WASM doer hands the stream over chunk by chunk: events split across
// chunks arrive as soon as they are complete, before the stream ends.
func TestStreamOverFetchReader(t *testing.T) {
	fakeStreamFetch(t)
	body, _ := json.Marshal(shared.UsageResponse{Snapshot: shared.Snapshot{Account: "default",
		Meters: []shared.Meter{{ID: "session", Label: "Current session", PercentUsed: 42}}}})
	c, err := New(Config{BaseURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *shared.UsageResponse, 4)
	done := make(chan StreamEnd, 1)
	go func() {
		done <- c.Stream(context.Background(), StreamRequest{Token: "tok-0123456789abcdef",
			OnEvent: func(u *shared.UsageResponse) { got <- u }})
	}()
	wait := func() *shared.UsageResponse {
		select {
		case u := <-got:
			return u
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5 s")
		}
		return nil
	}
	for js.Global().Get("__feed").Type() != js.TypeFunction {
		time.Sleep(time.Millisecond)
	}
	half := len(body) / 2
	feed("retry: 5000\r\n\r\nevent: usage\r\ndata: " + string(body[:half]))
	feed(string(body[half:]) + "\r\n\r")
	feed("\n")
	if u := wait(); u.Meters[0].PercentUsed != 42 {
		t.Errorf("first event = %+v", u)
	}
	feed(": ping\n\nevent: usage\ndata: " + string(body) + "\n\n")
	wait()
	js.Global().Call("__end")
	end := <-done
	if got, want := end.Events, 2; got != want {
		t.Errorf("events = %d, want %d", got, want)
	}
	if !errors.Is(end.Err, ErrStreamEnded) || end.Retry != 5*time.Second || !end.Opened {
		t.Errorf("end = %+v", end)
	}
	if got, want := js.Global().Get("__auth").String(), "Bearer tok-0123456789abcdef"; got != want {
		t.Errorf("Authorization = %q, want %q", got, want)
	}
	if got, want := js.Global().Get("__url").String(), "http://127.0.0.1:1"+shared.PathStream; got != want {
		t.Errorf("url = %q, want %q", got, want)
	}
}

// Ending the context aborts the fetch and a pending read returns.
func TestStreamOverFetchAbortsOnCancel(t *testing.T) {
	fakeStreamFetch(t)
	c, _ := New(Config{BaseURL: "http://127.0.0.1:1"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan StreamEnd, 1)
	go func() { done <- c.Stream(ctx, StreamRequest{}) }()
	for js.Global().Get("__feed").Type() != js.TypeFunction {
		time.Sleep(time.Millisecond)
	}
	feed(": ping\n\n")
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case end := <-done:
		if !errors.Is(end.Err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", end.Err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end within 5 s of the cancel")
	}
	if !js.Global().Get("__aborted").Bool() {
		t.Error("the fetch was not aborted")
	}
}
