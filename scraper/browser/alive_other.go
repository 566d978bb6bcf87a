//go:build !unix

package browser

import "os"

// alive: without signals, a process that can be found is taken as alive.
func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	_ = p.Release()
	return true
}
