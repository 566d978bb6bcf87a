//go:build unix

package browser

import (
	"errors"
	"syscall"
)

// alive: signal 0 checks that the process exists; EPERM means it does but
// belongs to someone else.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
