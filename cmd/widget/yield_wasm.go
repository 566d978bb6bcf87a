//go:build js && wasm

package main

import "syscall/js"

// yieldToBrowser lets the browser run a task (paint, input) before the
// program goes on: blocking on a setTimeout callback returns control to
// the event loop. app.wasm's start is otherwise one long main-thread task
// from the runtime's init to the first render.
func yieldToBrowser() {
	done := make(chan struct{})
	var f js.Func
	f = js.FuncOf(func(js.Value, []js.Value) any {
		f.Release()
		close(done)
		return nil
	})
	js.Global().Call("setTimeout", f, 0)
	<-done
}
