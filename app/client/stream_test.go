//go:build !(js && wasm)

package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/claude-usage/widget/shared"
)

func TestStreamAgainstRealServer(t *testing.T) {
	body, _ := json.Marshal(usageBody("default"))
	tests := []struct {
		name        string
		handler     http.HandlerFunc
		events      int
		opened      bool
		unsupported bool
		failures    int // in the breaker afterwards
		err         error
		category    shared.Category
	}{
		{"two events then the server ends it", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "retry: 5000\n\nevent: usage\r\ndata: "+string(body)+"\r\n\r\n")
			w.(http.Flusher).Flush()
			io.WriteString(w, ": ping\n\nevent: usage\ndata: "+string(body)+"\n\nevent: other\ndata: x\n\n")
		}, 2, true, false, 0, ErrStreamEnded, shared.CategoryNetwork},
		{"refused with 503 STREAM_LIMIT", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(503)
			io.WriteString(w, `{"errorCode":"STREAM_LIMIT","message":"too many streams"}`)
		}, 0, false, false, 1, nil, shared.CategoryServer},
		{"a server without the stream", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			io.WriteString(w, `{"errorCode":"NOT_FOUND","message":"no route"}`)
		}, 0, false, true, 0, nil, shared.CategoryNotFound},
		{"a portal page", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html>sign in</html>")
		}, 0, false, false, 1, nil, shared.CategoryServer},
		{"ends before any event", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, ": ping\n\n")
		}, 0, false, false, 1, ErrStreamEnded, shared.CategoryNetwork},
		{"not a usage body is skipped", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "event: usage\ndata: {\"meters\":[]}\n\nevent: usage\ndata: {nope\n\nevent: usage\ndata: "+string(body)+"\n\n")
		}, 1, true, false, 0, ErrStreamEnded, shared.CategoryNetwork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var auth, accept, path string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				auth, accept, path = r.Header.Get("Authorization"), r.Header.Get("Accept"), r.URL.RequestURI()
				tt.handler(w, r)
			}))
			defer srv.Close()
			br := shared.NewBreaker(shared.BreakerConfig{Name: "test"})
			c, err := New(Config{BaseURL: srv.URL, Breaker: br, HTTP: &http.Client{}})
			if err != nil {
				t.Fatal(err)
			}
			var got []*shared.UsageResponse
			end := c.Stream(context.Background(), StreamRequest{Account: "work", Token: "tok-0123456789abcdef",
				OnEvent: func(u *shared.UsageResponse) { got = append(got, u) }})
			if got, want := len(got), tt.events; got != want || end.Events != want {
				t.Errorf("events = %d (end says %d), want %d", got, end.Events, want)
			}
			if end.Opened != tt.opened || end.Unsupported != tt.unsupported {
				t.Errorf("opened, unsupported = %v, %v, want %v, %v", end.Opened, end.Unsupported, tt.opened, tt.unsupported)
			}
			if got, want := br.Failures(), tt.failures; got != want {
				t.Errorf("breaker failures = %d, want %d", got, want)
			}
			if tt.err != nil && !errors.Is(end.Err, tt.err) {
				t.Errorf("err = %v, want %v", end.Err, tt.err)
			}
			if got, want := end.Category, tt.category; got != want {
				t.Errorf("category = %q, want %q", got, want)
			}
			if got, want := auth, "Bearer tok-0123456789abcdef"; got != want {
				t.Errorf("Authorization = %q, want %q", got, want)
			}
			if got, want := accept, "text/event-stream"; got != want {
				t.Errorf("Accept = %q, want %q", got, want)
			}
			if got, want := path, shared.PathStream+"?account=work"; got != want {
				t.Errorf("request = %q, want %q", got, want)
			}
		})
	}
}

// pipeDoer answers with a stream the test holds open.
type pipeDoer struct{ w *io.PipeWriter }

func (d *pipeDoer) Do(r *http.Request) (*http.Response, error) {
	pr, pw := io.Pipe()
	d.w = pw
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: pr}, nil
}

// A stream that sends nothing, not even a ping, for longer than Idle ends
// as a NETWORK failure; its context ending stops it too.
func TestStreamIdleAndCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &pipeDoer{}
		c, _ := New(Config{BaseURL: "http://127.0.0.1:1", HTTP: d})
		start := time.Now()
		end := c.Stream(context.Background(), StreamRequest{})
		if got, want := time.Since(start), DefaultStreamIdle; got != want {
			t.Errorf("idle stream ended after %v, want %v", got, want)
		}
		if got, want := end.Category, shared.CategoryNetwork; got != want {
			t.Errorf("category = %q, want %q (%v)", got, want, end.Err)
		}

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan StreamEnd)
		go func() { done <- c.Stream(ctx, StreamRequest{}) }()
		synctest.Wait()
		cancel()
		if end := <-done; !errors.Is(end.Err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", end.Err)
		}
	})
}
