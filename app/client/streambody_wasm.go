//go:build js && wasm

package client

import (
	"context"
	"io"
	"sync"
	"syscall/js"
)

// streamBody is a response body read chunk by chunk from a fetch
// response's ReadableStream reader, so a text/event-stream is handed over
// as it arrives. Closing it, or ending the request's context, cancels the
// reader and aborts the fetch; a pending Read then returns.
type streamBody struct {
	reader    js.Value
	abort     func()
	stopAfter func() bool
	once      sync.Once
	mu        sync.Mutex
	rest      []byte
	eof       bool
	err       error
}

func newStreamBody(ctx context.Context, reader js.Value, abort func()) *streamBody {
	b := &streamBody{reader: reader, abort: abort}
	b.stopAfter = context.AfterFunc(ctx, func() { b.Close() })
	return b
}

type chunk struct {
	b   []byte
	eof bool
	err error
}

func (b *streamBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.rest) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		if b.eof {
			return 0, io.EOF
		}
		c := b.next()
		b.rest, b.eof, b.err = c.b, c.eof, c.err
	}
	n := copy(p, b.rest)
	b.rest = b.rest[n:]
	return n, nil
}

// next waits for the reader's next chunk.
func (b *streamBody) next() chunk {
	ch := make(chan chunk, 1)
	onChunk := js.FuncOf(func(_ js.Value, args []js.Value) any {
		r := args[0]
		if r.Get("done").Bool() {
			ch <- chunk{eof: true}
			return nil
		}
		u8 := r.Get("value")
		buf := make([]byte, u8.Get("length").Int())
		js.CopyBytesToGo(buf, u8)
		ch <- chunk{b: buf}
		return nil
	})
	onErr := js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := "stream read failed"
		if len(args) > 0 && args[0].Truthy() {
			msg = args[0].Call("toString").String()
		}
		ch <- chunk{err: &fetchError{msg: msg}}
		return nil
	})
	b.reader.Call("read").Call("then", onChunk, onErr)
	c := <-ch
	onChunk.Release()
	onErr.Release()
	return c
}

// Close cancels the reader (a pending read resolves as done) and aborts
// the fetch. It does not wait for a Read in progress.
func (b *streamBody) Close() error {
	b.once.Do(func() {
		b.stopAfter()
		// cancel returns a promise that may reject once the fetch is
		// aborted; nobody waits for it, so it must not go unhandled.
		var settled js.Func
		settled = js.FuncOf(func(js.Value, []js.Value) any { settled.Release(); return nil })
		b.reader.Call("cancel").Call("then", settled, settled)
		if b.abort != nil {
			b.abort()
		}
	})
	return nil
}
