package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// pgUser is who runs initdb and postgres when the tests run as root.
const pgUser = "nobody"

func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(pgUser)
	if err != nil {
		return nil, fmt.Errorf("testutil: running as root and user %s is missing: %w", pgUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// asPostgresUser hands dir to the unprivileged user when running as root.
func asPostgresUser(dir string) error {
	c, err := pgCredential()
	if err != nil || c == nil {
		return err
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, int(c.Uid), int(c.Gid))
	})
}

// runAsPostgresUser makes cmd run as the unprivileged user when running as
// root, and be killed when the test process dies.
func runAsPostgresUser(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if c, _ := pgCredential(); c != nil {
		cmd.SysProcAttr.Credential = c
		cmd.Env = append(os.Environ(), "HOME="+cmd.Dir)
	}
}
