package store

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/shared"
)

// The behaviour every backend shares (ordering, numbering, idempotency,
// retention, scraper reports) is tested for the file store and PostgreSQL
// alike by the conformance suite in server/store/storetest; the tests here
// are about the files.

// TestReplaysWriteNoFile: a replay, after a restart too, and concurrent
// saves of one key leave one file per version.
func TestReplaysWriteNoFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	s := openTest(t, dir, nil)
	req := SaveRequest{Snapshot: snap("default", t0, 42), IdempotencyKey: "d4k2abc", BodyHash: "sha256:aaa"}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := s.Save(ctx, req); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got, want := len(listVersions(t, dir, "default")), 1; got != want {
		t.Fatalf("files after 8 concurrent saves of one key = %d, want %d", got, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, dir, nil)
	if res, err := s2.Save(ctx, req); err != nil || !res.Replayed {
		t.Fatalf("replay after restart = %+v, %v", res, err)
	}
	if got, want := len(listVersions(t, dir, "default")), 1; got != want {
		t.Errorf("files after a replay = %d, want %d", got, want)
	}
}

// TestBadAccountCreatesNothing: an account that is not a path segment is
// refused before anything is created outside the data directory.
func TestBadAccountCreatesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	for _, account := range []string{"../escape", "a/b", ".hidden"} {
		if _, err := s.Save(context.Background(), SaveRequest{Snapshot: snap(account, t0, 1)}); codeOf(err) != shared.CodeValidationFailed {
			t.Errorf("Save(%q) = %v, want VALIDATION_FAILED", account, err)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape")); err == nil {
		t.Error("a directory was created outside the data dir")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the data dir holds %v", names(ents))
	}
}

func TestStatusAfterOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	st := s.Status()
	if !st.Writable || st.WriteErr != nil {
		t.Errorf("Writable = %v (%v), want true", st.Writable, st.WriteErr)
	}
	if st.FreeBytes == 0 {
		t.Error("FreeBytes = 0 on a real disk")
	}
	if got, want := st.Breaker, shared.StateClosed; got != want {
		t.Errorf("Breaker = %v, want %v", got, want)
	}
	abs, _ := filepath.Abs(dir)
	if got, want := st.Dir, abs; got != want {
		t.Errorf("Dir = %q, want %q", got, want)
	}
	if ents, _ := os.ReadDir(dir); countTmp(names(ents)) != 0 {
		t.Errorf("probe file left in %s: %v", dir, names(ents))
	}
}

func names(ents []os.DirEntry) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestSaveRecreatesRemovedAccountDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	mustSave(t, s, snap("default", t0, 1))
	if err := os.RemoveAll(filepath.Join(dir, "default")); err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, snap("default", t0.Add(time.Minute), 2))
	if got, want := len(listVersions(t, dir, "default")), 1; got != want {
		t.Errorf("files = %d, want %d", got, want)
	}
}

// TestCloseWaitsForInFlightSave holds a save at its rename, starts Close,
// and checks that Close returns only after the save finished and that the
// save was not cut short.
func TestCloseWaitsForInFlightSave(t *testing.T) {
	t.Parallel()
	bubble(t, func(t *testing.T) {
		dir := t.TempDir()
		ffs := newFaultFS()
		s := openTest(t, dir, func(o *Options) { o.FS = ffs })
		release := make(chan struct{})
		ft := ffs.Add(&testutil.Fault{Op: "Rename", Path: versionsDir, Block: release, Times: 1})

		saveErr := make(chan error, 1)
		go func() {
			_, err := s.Save(context.Background(), SaveRequest{Snapshot: snap("default", t0, 1)})
			saveErr <- err
		}()
		<-ft.Entered
		closed := make(chan struct{})
		go func() {
			_ = s.Close()
			close(closed)
		}()
		synctest.Wait() // Close is waiting for the save
		if _, err := s.Save(context.Background(), SaveRequest{Snapshot: snap("default", t0.Add(time.Minute), 1)}); codeOf(err) != shared.CodeStorageUnavailable {
			t.Errorf("Save while closing = %v, want STORAGE_UNAVAILABLE", err)
		}
		select {
		case <-closed:
			t.Fatal("Close returned while a save was in flight")
		default:
		}
		close(release)
		<-closed
		select {
		case err := <-saveErr:
			if err != nil {
				t.Errorf("in-flight save failed: %v", err)
			}
		default:
			t.Fatal("Close returned before the in-flight save")
		}
		if got, want := len(listVersions(t, dir, "default")), 1; got != want {
			t.Errorf("files = %d, want %d", got, want)
		}
	})
}
