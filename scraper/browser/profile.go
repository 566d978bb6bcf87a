package browser

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/claude-usage/widget/scraper/scrapeerr"
)

// profileFree returns a PROFILE_IN_USE error when a live Chromium holds
// dir. Chromium marks a profile it runs on with the symlink SingletonLock
// → "<hostname>-<pid>"; a second Chromium on the same profile hands its
// work to that process and exits, which would otherwise look like a
// broken browser. A lock left by a crash (dead pid, other host) is not
// in the way: Chromium takes it over.
func profileFree(dir string) error {
	pid, ok := LockHolder(dir)
	if !ok {
		return nil
	}
	return scrapeerr.New(scrapeerr.ProfileInUse, nil,
		"browser: the profile %s is in use by another Chromium (pid %d; is `usage-scraper run` or `login` running?)", dir, pid)
}

// LockHolder is the pid of the live process on this host that holds the
// profile's SingletonLock, if any.
func LockHolder(dir string) (int, bool) {
	target, err := os.Readlink(filepath.Join(dir, "SingletonLock"))
	if err != nil {
		return 0, false
	}
	i := strings.LastIndexByte(target, '-')
	if i < 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(target[i+1:])
	if err != nil || pid <= 0 {
		return 0, false
	}
	if host, err := os.Hostname(); err == nil && target[:i] != host {
		return 0, false
	}
	return pid, alive(pid)
}
