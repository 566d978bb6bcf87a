package browser

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// A SingletonLock left by a crash (dead pid), by another host, or not a
// lock at all does not hold the profile; one naming a live pid here does.
func TestLockHolder(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, target string
		want         bool
	}{
		{"live pid on this host", host + "-" + strconv.Itoa(os.Getpid()), true},
		{"dead pid", host + "-2147483646", false},
		{"other host", "some-other-mac.local-" + strconv.Itoa(os.Getpid()), false},
		{"garbage", "nonsense", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Symlink(tc.target, filepath.Join(dir, "SingletonLock")); err != nil {
				t.Fatal(err)
			}
			if _, got := LockHolder(dir); got != tc.want {
				t.Errorf("LockHolder = %v, want %v", got, tc.want)
			}
			if err := profileFree(dir); (err != nil) != tc.want {
				t.Errorf("profileFree = %v, want an error %v", err, tc.want)
			}
		})
	}
	if _, got := LockHolder(t.TempDir()); got {
		t.Error("a profile without a lock is held")
	}
}
