package outbox

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/atomicfile"
	"github.com/claude-usage/widget/internal/testutil"
)

// On a real full disk (ENOSPC from a size-limited tmpfs) Put keeps each
// snapshot in memory under the id it returns; the queue lists and loads
// them; once there is room Flush writes them under the same ids, and a
// restart finds them on disk.
func TestDiskFullHoldsSnapshotsInMemory(t *testing.T) {
	t.Parallel()
	mnt, filler := testutil.FullDisk(t, "256k")
	dir := filepath.Join(mnt, "outbox")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	o, lb := open(t, dir, 0)
	var want []string
	for i := range 3 {
		id, err := o.Put(snap(t0.Add(time.Duration(i)*time.Minute), float64(i)))
		var nd *NotDurableError
		if !errors.As(err, &nd) || nd.ID != id || id == "" || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Put on a full disk = %q, %v; want the id and a *NotDurableError for ENOSPC", id, err)
		}
		want = append(want, id)
	}
	if got := testutil.LogRecords(t, lb.String(), "outbox write failed; the snapshot is held in memory and written again before every send"); len(got) != 3 || got[0]["level"] != "ERROR" {
		t.Errorf("hold logs = %v, want 3 at ERROR", got)
	}
	items, err := o.List()
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(items); !reflect.DeepEqual(got, want) {
		t.Errorf("List = %v, want the held %v oldest first", got, want)
	}
	if s, err := o.Load(want[1]); err != nil || s.Meters[0].PercentUsed != 1 {
		t.Errorf("Load of a held snapshot = %+v, %v", s, err)
	}
	if err := o.Flush(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Flush on a full disk = %v, want ENOSPC", err)
	}
	if got, want := o.Held(), 3; got != want {
		t.Errorf("Held = %d, want %d", got, want)
	}
	if got := tmpFiles(t, dir); len(got) != 0 {
		t.Errorf("failed writes left temp files: %v", got)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := o.Flush(); err != nil {
		t.Fatalf("Flush with room again = %v", err)
	}
	if got := o.Held(); got != 0 {
		t.Errorf("Held after Flush = %d, want 0", got)
	}
	o2, _ := open(t, dir, 0)
	items, err = o2.List()
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(items); !reflect.DeepEqual(got, want) {
		t.Errorf("after a restart List = %v, want %v on disk", got, want)
	}
}

// Beyond MaxHeld the oldest held snapshots are dropped: an error-level log
// and a count the runner reports as a scraper status.
func TestHeldBoundDropsOldest(t *testing.T) {
	t.Parallel()
	mnt, _ := testutil.FullDisk(t, "256k")
	lb := &testutil.LogBuffer{}
	o, err := Open(mnt, Options{MaxHeld: 2, Logger: slog.New(slog.NewJSONHandler(lb, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for i := range 5 {
		id, _ := o.Put(snap(t0.Add(time.Duration(i)*time.Minute), float64(i)))
		all = append(all, id)
	}
	items, _ := o.List()
	if got, want := ids(items), all[3:]; !reflect.DeepEqual(got, want) {
		t.Errorf("held = %v, want the newest two %v", got, want)
	}
	if d := o.Dropped(); d.Count != 3 || !strings.Contains(d.Reason, "cannot be written") {
		t.Errorf("Dropped = %+v, want 3 with the reason", d)
	}
	logs := testutil.LogRecords(t, lb.String(), "snapshots dropped: neither stored nor sent")
	if len(logs) != 3 || logs[0]["level"] != "ERROR" || logs[2]["droppedSinceStart"] != 3.0 {
		t.Errorf("drop logs = %v, want 3 at ERROR counting up to 3", logs)
	}
}

// faultFS is the real filesystem with the faults no disk shows on demand.
type faultFS struct {
	atomicfile.FS
	syncDirFails int // the next n SyncDir calls fail
	removeFails  bool
}

func (f *faultFS) SyncDir(path string) error {
	if f.syncDirFails > 0 {
		f.syncDirFails--
		return &os.PathError{Op: "fsync", Path: path, Err: syscall.EIO}
	}
	return f.FS.SyncDir(path)
}

func (f *faultFS) Remove(path string) error {
	if f.removeFails {
		return &os.PathError{Op: "remove", Path: path, Err: syscall.EIO}
	}
	return f.FS.Remove(path)
}

// A directory sync that fails after the rename leaves the snapshot held
// under the id Put returned, listed once whether or not the visible file
// could be removed, and written under that same id by Flush: the server can
// never see it under a second id.
func TestDirSyncFailureAfterRenameKeepsOneID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		removeFails bool
	}{
		{"renamed file removed", false},
		{"renamed file stays", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fsys := &faultFS{FS: atomicfile.OS, syncDirFails: 1, removeFails: tc.removeFails}
			o, err := Open(dir, Options{FS: fsys})
			if err != nil {
				t.Fatal(err)
			}
			id, err := o.Put(snap(t0, 7))
			var nd *NotDurableError
			if !errors.As(err, &nd) || !nd.Renamed || nd.ID != id {
				t.Fatalf("Put = %q, %v; want a renamed *NotDurableError for its id", id, err)
			}
			fsys.removeFails = false
			items, err := o.List()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ids(items), []string{id}; !reflect.DeepEqual(got, want) {
				t.Errorf("List = %v, want %v once", got, want)
			}
			if err := o.Flush(); err != nil {
				t.Fatal(err)
			}
			m, _ := filepath.Glob(filepath.Join(dir, "*.json"))
			if len(m) != 1 || !strings.HasSuffix(m[0], "-"+id+".json") {
				t.Errorf("files after Flush = %v, want one for %s", m, id)
			}
			if err := o.Remove(id); err != nil {
				t.Fatal(err)
			}
			if n, _ := o.Len(); n != 0 {
				t.Errorf("Len after Remove = %d, want 0", n)
			}
		})
	}
}
