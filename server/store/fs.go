package store

import (
	"io/fs"
	"os"

	"github.com/claude-usage/widget/internal/atomicfile"
)

// FS is the slice of the filesystem the store uses. It exists so that tests
// can inject the errors a real disk rarely produces on demand (EBUSY, EIO,
// a hanging syscall); production uses OSFS. It embeds atomicfile.FS so that
// every durable write goes through the one atomic writer on the same
// injected filesystem.
type FS interface {
	atomicfile.FS
	MkdirAll(path string, perm fs.FileMode) error
	ReadFile(path string) ([]byte, error)
	ReadDir(path string) ([]fs.DirEntry, error) // in no particular order
	Stat(path string) (fs.FileInfo, error)
	// Statfs returns the bytes available to an unprivileged user on the
	// filesystem holding path.
	Statfs(path string) (free uint64, err error)
}

// File is the part of *os.File the store writes through.
type File = atomicfile.File

// OSFS returns the real filesystem.
func OSFS() FS { return osFS{} }

type osFS struct{}

func (osFS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }
func (osFS) CreateTemp(dir, pattern string) (File, error) {
	return atomicfile.OS.CreateTemp(dir, pattern)
}
func (osFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
func (osFS) Remove(path string) error             { return os.Remove(path) }
func (osFS) ReadFile(path string) ([]byte, error) { return readFile(path) }
func (osFS) SyncDir(path string) error            { return atomicfile.SyncDir(path) }

// ReadDir does not sort, unlike os.ReadDir: at 10 000 versions the sort is a
// tenth of Open, and the index sorts what it loads anyway.
func (osFS) ReadDir(path string) ([]fs.DirEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	ents, err := f.ReadDir(-1)
	cerr := f.Close()
	if err != nil {
		return nil, err
	}
	return ents, cerr
}
func (osFS) Stat(path string) (fs.FileInfo, error) { return os.Stat(path) }
func (osFS) Statfs(path string) (uint64, error)    { return statfsFree(path) }
