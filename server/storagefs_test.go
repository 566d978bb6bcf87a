package server

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// newFSEnv runs the real store on the real filesystem with faults injected
// where asked: root ignores chmod and a full disk cannot be made on demand
// without a mount, so this is how the server meets ENOSPC and EACCES from
// the real store.
func newFSEnv(t *testing.T) (*env, *testutil.FaultFS) {
	t.Helper()
	ffs := testutil.NewFaultFS(store.OSFS())
	e := newEnv(t, wrapStore(func(storeT) storeT {
		st, err := store.Open(context.Background(), store.Options{
			Dir: t.TempDir(), FS: ffs, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatalf("store.Open: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}))
	return e, ffs
}

// fail makes every file creation fail with errno (nil clears it).
func fail(ffs *testutil.FaultFS, errno error) {
	ffs.Clear()
	if errno != nil {
		ffs.Add(&testutil.Fault{Op: "CreateTemp", Err: errno, Times: -1})
	}
}

// TestRealStoreDiskFullAndRecovery: three disk-full POSTs open the store's
// breaker; health says OPEN at once (not what it saw at its last check);
// once the disk has room, POSTs are accepted within store.RecoveryEvery,
// not after the 60 s cooldown.
func TestRealStoreDiskFullAndRecovery(t *testing.T) {
	t.Parallel()
	warmFasthttp()
	synctest.Test(t, func(t *testing.T) {
		e, ffs := newFSEnv(t)
		e.mustPost(snap("default", t0, 1))
		fail(ffs, syscall.ENOSPC)
		for i := range 3 {
			eb := wantError(t, e.post(snap("default", t0.Add(time.Duration(i+1)*time.Second), 2)),
				http.StatusInsufficientStorage, shared.CodeStorageDiskFull)
			if !strings.Contains(eb.Message, "free") || !strings.Contains(eb.Message, "mode") {
				t.Errorf("message %q lacks free bytes and directory mode", eb.Message)
			}
		}
		// Three failures opened the store's breaker: the next write is
		// refused at once with 503, and health says why.
		eb := wantError(t, e.post(snap("default", t0.Add(time.Minute), 3)), http.StatusServiceUnavailable, shared.CodeStorageUnavailable)
		if !strings.Contains(eb.Message, "disk full") {
			t.Errorf("breaker message %q does not carry the last error", eb.Message)
		}
		code, h := getHealth(t, e)
		if code != http.StatusServiceUnavailable || h.Storage.Breaker != "OPEN" || h.Storage.Status != "unavailable" {
			t.Errorf("health right after the breaker opened = %d %+v, want 503 with breaker OPEN", code, h.Storage)
		}
		if got := metricValue(t, e, "usage_store_breaker_state"); got != float64(shared.StateOpen) {
			t.Errorf("usage_store_breaker_state = %v, want %d", got, shared.StateOpen)
		}
		// Reads keep working from the index.
		if r := e.get(shared.PathUsage); r.status != http.StatusOK {
			t.Errorf("GET while storage fails = %d", r.status)
		}
		if got := metricValue(t, e, `usage_store_write_failures_total{code="STORAGE_DISK_FULL"}`); got != 3 {
			t.Errorf("DISK_FULL failures = %v, want 3", got)
		}
		if got := metricValue(t, e, `usage_store_write_failures_total{code="STORAGE_UNAVAILABLE"}`); got != 1 {
			t.Errorf("UNAVAILABLE failures = %v, want 1", got)
		}

		fail(ffs, nil) // space freed
		time.Sleep(store.RecoveryEvery)
		synctest.Wait()
		if r := e.post(snap("default", t0.Add(2*time.Minute), 4)); r.status != http.StatusCreated {
			t.Fatalf("POST %v after the disk had room = %d %s, want 201", store.RecoveryEvery, r.status, r.body)
		}
		if code, h := getHealth(t, e); code != http.StatusOK || h.Storage.Breaker != "CLOSED" || !h.Storage.Writable {
			t.Errorf("health after recovery = %d %+v", code, h.Storage)
		}
	})
}

func TestRealStorePermissionDenied(t *testing.T) {
	t.Parallel()
	e, ffs := newFSEnv(t)
	fail(ffs, syscall.EACCES)
	eb := wantError(t, e.post(snap("default", t0, 1)), http.StatusInternalServerError, shared.CodeStoragePermissionDenied)
	if !strings.Contains(eb.Message, "permission denied") || !strings.Contains(eb.Message, "owner") {
		t.Errorf("message %q", eb.Message)
	}
	// An idempotent replay of a stored snapshot needs no disk.
	fail(ffs, nil)
	r := e.post(snap("default", t0, 1), shared.HeaderIdempotencyKey, "k1")
	if r.status != http.StatusCreated {
		t.Fatalf("POST = %d %s", r.status, r.body)
	}
	fail(ffs, syscall.EROFS)
	if r := e.post(snap("default", t0, 1), shared.HeaderIdempotencyKey, "k1"); r.status != http.StatusOK {
		t.Errorf("replay while the disk fails = %d %s", r.status, r.body)
	}
}
