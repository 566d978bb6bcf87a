package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	for _, content := range []string{"one", "two, longer"} {
		if err := Write(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != content {
			t.Fatalf("content = %q, want %q", got, content)
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o640); got != want {
		t.Errorf("mode = %v, want %v", got, want)
	}
	assertOnly(t, dir, "f.json")
}

func TestWriteMissingDirFails(t *testing.T) {
	dir := t.TempDir()
	if err := Write(filepath.Join(dir, "no", "f"), []byte("x"), 0o600); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}

// faultFS is the real filesystem with one step failing: a rename or a
// directory sync cannot be made to fail on demand on a real disk.
type faultFS struct {
	renameErr, syncDirErr error
}

func (f faultFS) CreateTemp(dir, pattern string) (File, error) { return OS.CreateTemp(dir, pattern) }
func (f faultFS) Remove(path string) error                     { return OS.Remove(path) }
func (f faultFS) Rename(o, n string) error {
	if f.renameErr != nil {
		return f.renameErr
	}
	return OS.Rename(o, n)
}
func (f faultFS) SyncDir(path string) error {
	if f.syncDirErr != nil {
		return f.syncDirErr
	}
	return OS.SyncDir(path)
}

func TestWriteFSLeavesNothingOnError(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name        string
		fs          faultFS
		wantRenamed bool
	}{
		{"rename fails", faultFS{renameErr: boom}, false},
		{"dir sync fails after rename", faultFS{syncDirErr: boom}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			renamed, err := WriteFS(tc.fs, filepath.Join(dir, "f"), []byte("x"), 0o600)
			if !errors.Is(err, boom) {
				t.Fatalf("err = %v, want boom", err)
			}
			if renamed != tc.wantRenamed {
				t.Errorf("renamed = %v, want %v", renamed, tc.wantRenamed)
			}
			assertOnly(t, dir)
		})
	}
}

func TestIsTmp(t *testing.T) {
	for name, want := range map[string]bool{".tmp-123": true, ".tmp-": true, "a.json": false, ".tm": false} {
		if got := IsTmp(name); got != want {
			t.Errorf("IsTmp(%q) = %v, want %v", name, got, want)
		}
	}
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if len(got) != len(names) {
		t.Fatalf("dir holds %v, want %v", got, names)
	}
	for i := range names {
		if got[i] != names[i] {
			t.Fatalf("dir holds %v, want %v", got, names)
		}
	}
}
