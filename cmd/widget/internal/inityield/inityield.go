// Package inityield splits app.wasm's start-up on the browser's main
// thread. Go runs the runtime's set-up and every package's init in one
// JavaScript task, until the first goroutine blocks; at 4x CPU throttling
// that task alone is several hundred milliseconds of blocking time.
// Importing this package (blank) from main puts a wait for a setTimeout
// callback among the inits: the linker orders ready packages by import
// path, so this one, which needs only syscall/js, runs before unicode's
// init (the largest: its tables' maps) and everything after it. The
// browser paints and handles input in between. On the host it does
// nothing.
package inityield
