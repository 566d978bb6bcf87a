package testutil

import (
	"io/fs"
	"path/filepath"
	"strings"
	"sync"

	"github.com/claude-usage/widget/internal/atomicfile"
)

// StoreFS has the methods of the file store's filesystem (server/store.FS);
// a *FaultFS is one, and store.OSFS() can be its base. It is restated here
// because the store's own tests import this package.
type StoreFS interface {
	atomicfile.FS
	MkdirAll(path string, perm fs.FileMode) error
	ReadFile(path string) ([]byte, error)
	ReadDir(path string) ([]fs.DirEntry, error)
	Stat(path string) (fs.FileInfo, error)
	Statfs(path string) (free uint64, err error)
}

// Fault makes a FaultFS fail (or block) an operation on matching paths.
type Fault struct {
	// Op is one of MkdirAll, CreateTemp, Write, Chmod, Sync, Close, Rename,
	// Remove, ReadFile, ReadDir, Stat, Statfs, SyncDir.
	Op    string
	Path  string // substring of the path; "" matches every path
	Err   error  // wrapped in an *fs.PathError; nil with Block: proceed
	Times int    // failures left; < 0 = always
	// Block, when set, makes the op wait for it to close, then go on.
	Block chan struct{}
	// Entered is closed when the op first blocks (made by Add).
	Entered chan struct{}
	once    sync.Once
}

// FaultFS is a real filesystem with injected errors and a call log, for the
// conditions a test cannot cause on a real disk at will (EBUSY, EIO, a
// hanging fsync, ENOSPC without root).
type FaultFS struct {
	StoreFS
	mu     sync.Mutex
	faults []*Fault
	calls  []string
	free   *uint64
}

// NewFaultFS wraps base.
func NewFaultFS(base StoreFS) *FaultFS { return &FaultFS{StoreFS: base} }

// Add installs ft and returns it.
func (f *FaultFS) Add(ft *Fault) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ft.Block != nil && ft.Entered == nil {
		ft.Entered = make(chan struct{})
	}
	f.faults = append(f.faults, ft)
	return ft
}

// Clear removes every fault.
func (f *FaultFS) Clear() {
	f.mu.Lock()
	f.faults = nil
	f.mu.Unlock()
}

// SetFree fixes the answer of Statfs.
func (f *FaultFS) SetFree(n uint64) {
	f.mu.Lock()
	f.free = &n
	f.mu.Unlock()
}

// Calls returns the log of "Op path" entries.
func (f *FaultFS) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Count counts calls of op on paths containing sub.
func (f *FaultFS) Count(op, sub string) int {
	n := 0
	for _, c := range f.Calls() {
		o, p, _ := strings.Cut(c, " ")
		if o == op && strings.Contains(p, sub) {
			n++
		}
	}
	return n
}

func (f *FaultFS) check(op, path string) error {
	f.mu.Lock()
	f.calls = append(f.calls, op+" "+path)
	var hit *Fault
	for _, ft := range f.faults {
		if ft.Op == op && strings.Contains(path, ft.Path) && ft.Times != 0 {
			hit = ft
			if ft.Times > 0 {
				ft.Times--
			}
			break
		}
	}
	f.mu.Unlock()
	if hit == nil {
		return nil
	}
	if hit.Block != nil {
		hit.once.Do(func() { close(hit.Entered) })
		<-hit.Block
	}
	if hit.Err == nil {
		return nil
	}
	return &fs.PathError{Op: strings.ToLower(op), Path: path, Err: hit.Err}
}

func (f *FaultFS) MkdirAll(path string, perm fs.FileMode) error {
	if err := f.check("MkdirAll", path); err != nil {
		return err
	}
	return f.StoreFS.MkdirAll(path, perm)
}

func (f *FaultFS) CreateTemp(dir, pattern string) (atomicfile.File, error) {
	if err := f.check("CreateTemp", filepath.Join(dir, pattern)); err != nil {
		return nil, err
	}
	file, err := f.StoreFS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *FaultFS) Rename(oldpath, newpath string) error {
	if err := f.check("Rename", newpath); err != nil {
		return err
	}
	return f.StoreFS.Rename(oldpath, newpath)
}

func (f *FaultFS) Remove(path string) error {
	if err := f.check("Remove", path); err != nil {
		return err
	}
	return f.StoreFS.Remove(path)
}

func (f *FaultFS) ReadFile(path string) ([]byte, error) {
	if err := f.check("ReadFile", path); err != nil {
		return nil, err
	}
	return f.StoreFS.ReadFile(path)
}

func (f *FaultFS) ReadDir(path string) ([]fs.DirEntry, error) {
	if err := f.check("ReadDir", path); err != nil {
		return nil, err
	}
	return f.StoreFS.ReadDir(path)
}

func (f *FaultFS) Stat(path string) (fs.FileInfo, error) {
	if err := f.check("Stat", path); err != nil {
		return nil, err
	}
	return f.StoreFS.Stat(path)
}

func (f *FaultFS) Statfs(path string) (uint64, error) {
	if err := f.check("Statfs", path); err != nil {
		return 0, err
	}
	f.mu.Lock()
	free := f.free
	f.mu.Unlock()
	if free != nil {
		return *free, nil
	}
	return f.StoreFS.Statfs(path)
}

func (f *FaultFS) SyncDir(path string) error {
	if err := f.check("SyncDir", path); err != nil {
		return err
	}
	return f.StoreFS.SyncDir(path)
}

type faultFile struct {
	atomicfile.File
	fs *FaultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.check("Write", f.Name()); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *faultFile) Chmod(mode fs.FileMode) error {
	if err := f.fs.check("Chmod", f.Name()); err != nil {
		return err
	}
	return f.File.Chmod(mode)
}

func (f *faultFile) Sync() error {
	if err := f.fs.check("Sync", f.Name()); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) Close() error {
	if err := f.fs.check("Close", f.Name()); err != nil {
		_ = f.File.Close()
		return err
	}
	return f.File.Close()
}
