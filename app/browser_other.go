//go:build !(js && wasm)

package app

// browserDeps has no browser to talk to on the host: go-app never mounts
// (OnMount) there, so the server's render keeps the loading state.
func browserDeps() *Deps { return nil }

// afterTask runs f at once: the host has no event loop to yield to.
func afterTask(f func()) { f() }
