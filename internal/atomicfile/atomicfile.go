// Package atomicfile writes a file so that a reader, or the next start after
// a crash, sees either the old content or the new one, never a part: tmp in
// the same directory → write → fsync → rename → fsync the directory. It is
// the one writer for every durable file of the project (store versions,
// scraper status, the outbox, sync stats, the CLI, precompress).
//
// It is written here rather than taken from google/renameio because the
// store injects filesystem faults (EBUSY, EIO, a hanging fsync) that no test
// can cause on a real disk, and renameio writes through package os only.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// FS is the part of a filesystem a write needs.
type FS interface {
	// CreateTemp creates a new file in dir like os.CreateTemp.
	CreateTemp(dir, pattern string) (File, error)
	Rename(oldpath, newpath string) error
	Remove(path string) error
	// SyncDir fsyncs a directory so that a rename inside it is durable.
	SyncDir(path string) error
}

// File is the part of *os.File a write goes through.
type File interface {
	Name() string
	Write(p []byte) (int, error)
	Sync() error
	Chmod(mode fs.FileMode) error
	Close() error
}

// TmpPrefix starts the name of every temporary file, so that a start-up
// sweep can remove the ones a crash left behind.
const TmpPrefix = ".tmp-"

// OS is the real filesystem.
var OS FS = osFS{}

// Write writes data to path on the real filesystem with mode perm.
func Write(path string, data []byte, perm fs.FileMode) error {
	_, err := WriteFS(OS, path, data, perm)
	return err
}

// WriteFS is Write on fsys. On any error nothing is left behind: the tmp
// file is removed, and so is a renamed file whose directory could not be
// synced, so that a failed write never reappears after a restart (a caller
// that retries then writes it again instead of holding two copies).
// renamed reports whether the rename happened before the error, for callers
// that must know the file was briefly visible.
func WriteFS(fsys FS, path string, data []byte, perm fs.FileMode) (renamed bool, err error) {
	dir := filepath.Dir(path)
	f, err := fsys.CreateTemp(dir, TmpPrefix+"*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err == nil {
			return
		}
		if !closed {
			_ = f.Close()
		}
		victim := tmp
		if renamed {
			victim = path
		}
		if rerr := fsys.Remove(victim); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return false, err
	}
	if err = f.Chmod(perm); err != nil {
		return false, err
	}
	if err = f.Sync(); err != nil {
		return false, err
	}
	closed = true
	if err = f.Close(); err != nil {
		return false, err
	}
	if err = fsys.Rename(tmp, path); err != nil {
		return false, err
	}
	renamed = true
	return true, fsys.SyncDir(dir)
}

// IsTmp reports whether a directory entry's name is a leftover tmp file.
func IsTmp(name string) bool {
	return len(name) >= len(TmpPrefix) && name[:len(TmpPrefix)] == TmpPrefix
}

type osFS struct{}

func (osFS) CreateTemp(dir, pattern string) (File, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return f, nil
}
func (osFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
func (osFS) Remove(path string) error             { return os.Remove(path) }
func (osFS) SyncDir(path string) error            { return SyncDir(path) }

// SyncDir fsyncs the directory path on the real filesystem.
func SyncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return serr
	}
	return cerr
}
