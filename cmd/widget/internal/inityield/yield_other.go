//go:build !(js && wasm)

package inityield

// Yield does nothing outside the browser.
func Yield() {}
