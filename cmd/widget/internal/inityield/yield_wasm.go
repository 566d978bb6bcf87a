//go:build js && wasm

package inityield

import "syscall/js"

func init() { Yield() }

// Yield blocks until a setTimeout(0) callback runs: with every goroutine
// blocked, the Go scheduler returns to the browser's event loop, which
// runs whatever is waiting before it calls back into Go.
func Yield() {
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
