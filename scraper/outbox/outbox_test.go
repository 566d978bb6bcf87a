package outbox

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/atomicfile"
	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/shared"
)

var t0 = time.Date(2026, 11, 28, 13, 50, 0, 0, time.UTC)

func snap(at time.Time, pct float64) shared.Snapshot {
	r := at.Add(2 * time.Hour)
	return shared.Snapshot{
		Account: "default", ScrapedAt: at, Source: "claude.ai/settings/usage", Capture: shared.CaptureAPI,
		Meters: []shared.Meter{{ID: shared.MeterSession, Label: "Current session", PercentUsed: pct, ResetsAt: &r}},
	}
}

func open(t *testing.T, dir string, max int) (*Outbox, *testutil.LogBuffer) {
	t.Helper()
	lb := &testutil.LogBuffer{}
	o, err := Open(dir, Options{Max: max, Logger: slog.New(slog.NewJSONHandler(lb, nil))})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return o, lb
}

func ids(items []Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func tmpFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if atomicfile.IsTmp(d.Name()) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPutWritesWholeFileAndNoTemp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o, _ := open(t, dir, 0)
	s := snap(t0, 42)
	id, err := o.Put(s)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got := tmpFiles(t, dir); len(got) != 0 {
		t.Errorf("temp files left after Put: %v", got)
	}
	raw, err := os.ReadFile(filepath.Join(dir, fileName(t0, id)))
	if err != nil {
		t.Fatalf("the snapshot file is not named <time>-<id>.json: %v", err)
	}
	var onDisk shared.Snapshot
	if err := json.Unmarshal(raw, &onDisk); err != nil {
		t.Fatalf("file does not parse: %v", err)
	}
	if !reflect.DeepEqual(onDisk, s) {
		t.Errorf("on disk = %+v, want %+v", onDisk, s)
	}
	got, err := o.Load(id)
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Errorf("Load = %+v, %v; want %+v", got, err, s)
	}
}

func TestListOldestFirst(t *testing.T) {
	t.Parallel()
	o, _ := open(t, t.TempDir(), 0)
	put := func(at time.Time) string {
		id, err := o.Put(snap(at, 1))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	// Out of order, and two with the same scrape time (ties go by id,
	// which grows with creation).
	c := put(t0.Add(3 * time.Minute))
	a := put(t0)
	d1 := put(t0.Add(5 * time.Minute))
	d2 := put(t0.Add(5 * time.Minute))
	b := put(t0.Add(90 * time.Second).Add(7 * time.Nanosecond))
	items, err := o.List()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(items), []string{a, b, c, d1, d2}; !reflect.DeepEqual(got, want) {
		t.Errorf("List order = %v, want %v", got, want)
	}
	if got, want := items[1].ScrapedAt, t0.Add(90*time.Second).Add(7*time.Nanosecond); !got.Equal(want) {
		t.Errorf("ScrapedAt = %v, want %v", got, want)
	}
	if n, err := o.Len(); err != nil || n != 5 {
		t.Errorf("Len = %d, %v; want 5", n, err)
	}
}

func TestBoundDropsOldestWithLoggedCount(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o, _ := open(t, dir, 10)
	var all []string
	for i := range 5 {
		id, err := o.Put(snap(t0.Add(time.Duration(i)*time.Minute), float64(i)))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, id)
	}
	// Reopen with a smaller bound: the next Put trims three at once.
	o2, lb := open(t, dir, 3)
	id, err := o2.Put(snap(t0.Add(time.Hour), 9))
	if err != nil {
		t.Fatal(err)
	}
	items, err := o2.List()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(items), []string{all[3], all[4], id}; !reflect.DeepEqual(got, want) {
		t.Errorf("after trimming = %v, want the newest three %v", got, want)
	}
	logs := testutil.LogRecords(t, lb.String(), "snapshots dropped: neither stored nor sent")
	if len(logs) != 1 {
		t.Fatalf("got %d drop log lines, want 1", len(logs))
	}
	if got, want := logs[0]["level"], "ERROR"; got != want {
		t.Errorf("drop logged at %v, want %v", got, want)
	}
	if d := o2.Dropped(); d.Count != 3 || !strings.Contains(d.Reason, "more than 3 snapshots") {
		t.Errorf("Dropped = %+v, want 3 for the bound", d)
	}
	if got, want := logs[0]["dropped"], float64(3); got != want {
		t.Errorf("logged dropped = %v, want %v", got, want)
	}
	if got, want := logs[0]["component"], "outbox"; got != want {
		t.Errorf("component = %v, want %v", got, want)
	}
	// Within the bound nothing more is dropped.
	if _, err := o2.Put(snap(t0.Add(2*time.Hour), 9)); err != nil {
		t.Fatal(err)
	}
	if n, _ := o2.Len(); n != 3 {
		t.Errorf("Len = %d, want 3", n)
	}
}

func TestRejectMovesAsideWithReason(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o, lb := open(t, dir, 0)
	keep, _ := o.Put(snap(t0, 1))
	bad, _ := o.Put(snap(t0.Add(time.Minute), 2))
	if err := o.Reject(bad, "VALIDATION_FAILED: meters[0].percentUsed must be between 0 and 100"); err != nil {
		t.Fatalf("Reject: %v", err)
	}
	items, _ := o.List()
	if got, want := ids(items), []string{keep}; !reflect.DeepEqual(got, want) {
		t.Errorf("pending after reject = %v, want %v", got, want)
	}
	name := fileName(t0.Add(time.Minute), bad)
	if _, err := os.Stat(filepath.Join(dir, RejectedDir, name)); err != nil {
		t.Errorf("rejected snapshot not in rejected/: %v", err)
	}
	reason, err := os.ReadFile(filepath.Join(dir, RejectedDir, name+".reason"))
	if err != nil || !strings.Contains(string(reason), "percentUsed") {
		t.Errorf("reason file = %q, %v", reason, err)
	}
	if len(testutil.LogRecords(t, lb.String(), "snapshot rejected by the server, moved aside")) != 1 {
		t.Error("reject not logged")
	}
	info, err := Inspect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Pending != 1 || info.Rejected != 1 || info.Corrupt != 0 {
		t.Errorf("Inspect = %+v, want 1 pending, 1 rejected", info)
	}
	if err := o.Reject(bad, "again"); !errors.Is(err, ErrNotFound) {
		t.Errorf("rejecting twice = %v, want ErrNotFound", err)
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	o, _ := open(t, t.TempDir(), 0)
	id, _ := o.Put(snap(t0, 1))
	if err := o.Remove(id); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if n, _ := o.Len(); n != 0 {
		t.Errorf("Len after Remove = %d, want 0", n)
	}
	// Gone already (another process sent it): not an error.
	if err := o.Remove(id); err != nil {
		t.Errorf("second Remove = %v, want nil", err)
	}
	if _, err := o.Load(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load after Remove = %v, want ErrNotFound", err)
	}
	if _, err := o.Load("../../etc/passwd"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load of a non-id = %v, want ErrNotFound", err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o, _ := open(t, dir, 0)
	want := map[string]shared.Snapshot{}
	for i := range 4 {
		s := snap(t0.Add(time.Duration(i)*time.Minute), float64(10*i))
		id, err := o.Put(s)
		if err != nil {
			t.Fatal(err)
		}
		want[id] = s
	}
	o2, _ := open(t, dir, 0)
	items, err := o2.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != len(want) {
		t.Fatalf("reopened queue has %d items, want %d", len(items), len(want))
	}
	for _, it := range items {
		got, err := o2.Load(it.ID)
		if err != nil || !reflect.DeepEqual(got, want[it.ID]) {
			t.Errorf("Load(%s) = %+v, %v; want %+v", it.ID, got, err, want[it.ID])
		}
	}
}

func TestOpenRemovesOnlyOrphanedTemps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := filepath.Join(dir, atomicfile.TmpPrefix+"crashed")
	fresh := filepath.Join(dir, atomicfile.TmpPrefix+"being-written")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte(`{"half`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(old, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	o, lb := open(t, dir, 0)
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("orphaned temp file still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a temp file another process may be writing was removed: %v", err)
	}
	if len(testutil.LogRecords(t, lb.String(), "removed orphaned temp file")) != 1 {
		t.Error("orphan removal not logged")
	}
	if n, _ := o.Len(); n != 0 {
		t.Errorf("temp files count as pending: Len = %d", n)
	}
}

func TestUnparsableFilesMovedAsideNotLost(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o, lb := open(t, dir, 0)
	good, _ := o.Put(snap(t0.Add(time.Minute), 1))
	badID := "d4k2c6p3qf7c73a5ue10"
	badName := fileName(t0, badID)
	if err := os.WriteFile(filepath.Join(dir, badName), []byte(`{"account": "default", "scrapedAt": `), 0o600); err != nil {
		t.Fatal(err)
	}
	stray := "notes.txt"
	if err := os.WriteFile(filepath.Join(dir, stray), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	items, err := o.List()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(items), []string{badID, good}; !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	if _, err := o.Load(badID); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Load of a truncated file = %v, want ErrCorrupt", err)
	}
	for _, n := range []string{badName, stray} {
		if _, err := os.Stat(filepath.Join(dir, CorruptDir, n)); err != nil {
			t.Errorf("%s not moved to corrupt/: %v", n, err)
		}
		if _, err := os.Stat(filepath.Join(dir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still pending: %v", n, err)
		}
	}
	if got := len(testutil.LogRecords(t, lb.String(), "moved unreadable file aside")); got != 2 {
		t.Errorf("logged %d moves, want 2", got)
	}
	items, _ = o.List()
	if got, want := ids(items), []string{good}; !reflect.DeepEqual(got, want) {
		t.Errorf("List after = %v, want %v", got, want)
	}
	info, _ := Inspect(dir)
	if info.Corrupt != 2 || info.Pending != 1 {
		t.Errorf("Inspect = %+v, want 2 corrupt, 1 pending", info)
	}
}

func TestInspectMissingDirIsEmpty(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "never-created")
	info, err := Inspect(dir)
	if err != nil || info.Pending != 0 {
		t.Errorf("Inspect = %+v, %v; want empty", info, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Error("Inspect created the directory")
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, dir string }{
		{"empty", ""},
		{"under a file", filepath.Join(file, "outbox")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.dir, Options{})
			if err == nil || !strings.HasPrefix(err.Error(), "outbox: ") {
				t.Errorf("Open(%q) = %v, want an outbox error", tc.dir, err)
			}
		})
	}
}

func TestConcurrentPuts(t *testing.T) {
	t.Parallel()
	o, _ := open(t, t.TempDir(), 0)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := o.Put(snap(t0.Add(time.Duration(i)*time.Second), 1)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n, _ := o.Len(); n != 20 {
		t.Errorf("Len = %d, want 20", n)
	}
}
