//go:build js && wasm

package client

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall/js"
)

// defaultDoer sends requests with the browser's fetch. net/http's own
// client would do the same underneath, but linking http.Client drags its
// whole Transport (HTTP/2, TLS) into app.wasm: +5 MB raw, which alone
// breaks the 1.6 MB brotli budget. The request and response stay net/http
// types, so the rest of the client is the same code on both sides.
func defaultDoer() Doer { return FetchDoer{} }

// FetchDoer is a Doer over window.fetch (or Node's global fetch).
type FetchDoer struct{}

type fetchError struct{ msg string }

func (e *fetchError) Error() string   { return "fetch: " + e.msg }
func (e *fetchError) Timeout() bool   { return false }
func (e *fetchError) Temporary() bool { return true }
func (e *fetchError) Unwrap() error   { return ErrFetchFailed }

// Do sends req with fetch. The request's context aborts it.
func (FetchDoer) Do(req *http.Request) (*http.Response, error) {
	fetch := js.Global().Get("fetch")
	if fetch.Type() != js.TypeFunction {
		return nil, errors.New("client: fetch is not available")
	}
	ctx := req.Context()
	ac := js.Global().Get("AbortController").New()
	opts := js.Global().Get("Object").New()
	opts.Set("method", req.Method)
	opts.Set("signal", ac.Get("signal"))
	opts.Set("cache", "no-store")
	opts.Set("credentials", "same-origin")
	headers := js.Global().Get("Headers").New()
	for k, vs := range req.Header {
		for _, v := range vs {
			headers.Call("append", k, v)
		}
	}
	opts.Set("headers", headers)

	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	var onBody, onResp, onErr js.Func
	release := func() { onBody.Release(); onResp.Release(); onErr.Release() }
	onErr = js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := "unknown error"
		if len(args) > 0 && args[0].Truthy() {
			msg = args[0].Call("toString").String()
		}
		done <- result{err: &fetchError{msg: msg}}
		return nil
	})
	var status int
	var hdr http.Header
	onBody = js.FuncOf(func(_ js.Value, args []js.Value) any {
		u8 := js.Global().Get("Uint8Array").New(args[0])
		b := make([]byte, u8.Get("length").Int())
		js.CopyBytesToGo(b, u8)
		done <- result{resp: &http.Response{
			Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
			StatusCode:    status,
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        hdr,
			Body:          io.NopCloser(strings.NewReader(string(b))),
			ContentLength: int64(len(b)),
			Request:       req,
		}}
		return nil
	})
	onResp = js.FuncOf(func(_ js.Value, args []js.Value) any {
		r := args[0]
		status = r.Get("status").Int()
		hdr = http.Header{}
		var each js.Func
		each = js.FuncOf(func(_ js.Value, kv []js.Value) any {
			hdr.Add(kv[1].String(), kv[0].String())
			return nil
		})
		r.Get("headers").Call("forEach", each)
		each.Release()
		r.Call("arrayBuffer").Call("then", onBody, onErr)
		return nil
	})
	fetch.Invoke(req.URL.String(), opts).Call("then", onResp, onErr)

	select {
	case r := <-done:
		release()
		return r.resp, r.err
	case <-ctx.Done():
		ac.Call("abort")
		// The promise settles with an AbortError; wait for it so the
		// callbacks are not released while JS may still call them.
		<-done
		release()
		return nil, ctx.Err()
	}
}
