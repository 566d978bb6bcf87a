//go:build js && wasm

package client

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall/js"
	"time"
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
	streaming := req.Header.Get("Accept") == AcceptEventStream
	var pending inFlight
	if !streaming {
		pending = prefetched(req)
	}
	if pending.promise.IsUndefined() {
		pending.promise = fetch.Invoke(req.URL.String(), opts)
		pending.abort = func() { ac.Call("abort") }
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
		if streaming && r.Get("body").Truthy() {
			done <- result{resp: &http.Response{
				Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
				StatusCode:    status,
				Proto:         "HTTP/1.1",
				ProtoMajor:    1,
				ProtoMinor:    1,
				Header:        hdr,
				Body:          newStreamBody(ctx, r.Get("body").Call("getReader"), pending.abort),
				ContentLength: -1,
				Request:       req,
			}}
			return nil
		}
		r.Call("arrayBuffer").Call("then", onBody, onErr)
		return nil
	})
	pending.promise.Call("then", onResp, onErr)

	select {
	case r := <-done:
		release()
		return r.resp, r.err
	case <-ctx.Done():
		pending.abort()
		// The promise settles with an AbortError; wait for it so the
		// callbacks are not released while JS may still call them.
		<-done
		release()
		return nil, ctx.Err()
	}
}

// inFlight is a fetch promise and the way to abort it.
type inFlight struct {
	promise js.Value
	abort   func()
}

// prefetchMaxAge bounds how old web/prefetch.js's answer may be when the
// widget takes it; the widget refreshes every minute anyway.
const prefetchMaxAge = 10 * time.Second

// prefetched takes the request web/prefetch.js started while app.wasm
// loaded, if it is exactly req (method, path and query, Authorization) and
// recent. It is taken once, whether it matches or not, so a later fetch
// never gets an old answer.
func prefetched(req *http.Request) inFlight {
	g := js.Global()
	p := g.Get("__usagePrefetch")
	if p.Type() != js.TypeObject {
		return inFlight{}
	}
	g.Set("__usagePrefetch", js.Undefined())
	if req.Method != http.MethodGet || p.Get("url").Type() != js.TypeString || p.Get("auth").Type() != js.TypeString ||
		p.Get("at").Type() != js.TypeNumber || p.Get("response").Type() != js.TypeObject {
		return inFlight{}
	}
	age := time.Duration(g.Get("Date").Call("now").Float()-p.Get("at").Float()) * time.Millisecond
	if p.Get("url").String() != req.URL.RequestURI() || p.Get("auth").String() != req.Header.Get("Authorization") ||
		age < 0 || age > prefetchMaxAge {
		if abort := p.Get("abort"); abort.Type() == js.TypeFunction {
			abort.Invoke()
		}
		return inFlight{}
	}
	return inFlight{promise: p.Get("response"), abort: func() {
		if abort := p.Get("abort"); abort.Type() == js.TypeFunction {
			abort.Invoke()
		}
	}}
}
