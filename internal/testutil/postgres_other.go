//go:build !linux

package testutil

import (
	"errors"
	"os/exec"
)

// The throwaway cluster is for the Linux test machines (make test); on
// other systems StartPostgres fails with this.
func asPostgresUser(string) error {
	return errors.New("testutil: the throwaway PostgreSQL cluster runs on Linux only")
}

func runAsPostgresUser(*exec.Cmd) {}
