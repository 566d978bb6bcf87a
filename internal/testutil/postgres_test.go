package testutil

import (
	"strings"
	"testing"
)

// TestPostgresBinDirMissing: a directory without the binaries is an error
// that says what to install, never a silent skip.
func TestPostgresBinDirMissing(t *testing.T) {
	t.Setenv(PGBinDirEnv, t.TempDir())
	_, err := PostgresBinDir()
	if err == nil || !strings.Contains(err.Error(), "has no initdb and postgres") {
		t.Errorf("PostgresBinDir with an empty %s = %v", PGBinDirEnv, err)
	}
	if _, err := StartPostgres(); err == nil {
		t.Error("StartPostgres without binaries succeeded")
	}
}

func TestPostgresBinDirFound(t *testing.T) {
	t.Setenv(PGBinDirEnv, "")
	if _, err := PostgresBinDir(); err != nil {
		t.Errorf("PostgresBinDir = %v; make deps installs PostgreSQL", err)
	}
}
