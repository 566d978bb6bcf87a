package server

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// failingFS is the real filesystem with an errno injected into file
// creation: root ignores chmod and a full disk cannot be made on demand, so
// this is how the real store meets ENOSPC and EACCES in a test.
type failingFS struct {
	store.FS
	mu  sync.Mutex
	err error
}

func (f *failingFS) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *failingFS) CreateTemp(dir, pattern string) (store.File, error) {
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir + "/" + pattern, Err: err}
	}
	return f.FS.CreateTemp(dir, pattern)
}

func newFSEnv(t *testing.T) (*env, *failingFS) {
	t.Helper()
	ffs := &failingFS{FS: store.OSFS()}
	e := newEnv(t, wrapStore(func(storeT) storeT {
		st, err := store.Open(context.Background(), store.Options{
			Dir: t.TempDir(), Now: time.Now, FS: ffs, Logger: slog.New(slog.DiscardHandler),
			Sleep: func(context.Context, time.Duration) error { return nil },
		})
		if err != nil {
			t.Fatalf("store.Open: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}))
	return e, ffs
}

func TestRealStoreDiskFullAndBreaker(t *testing.T) {
	t.Parallel()
	e, ffs := newFSEnv(t)
	e.mustPost(snap("default", t0, 1))
	ffs.fail(syscall.ENOSPC)
	for i := range 3 {
		eb := wantError(t, e.post(snap("default", t0.Add(time.Duration(i+1)*time.Second), 2)),
			http.StatusInsufficientStorage, shared.CodeStorageDiskFull)
		if !strings.Contains(eb.Message, "free") || !strings.Contains(eb.Message, "mode") {
			t.Errorf("message %q lacks free bytes and directory mode", eb.Message)
		}
	}
	// Three failures opened the store's breaker: the next write is refused
	// at once with 503, and health says why.
	eb := wantError(t, e.post(snap("default", t0.Add(time.Minute), 3)), http.StatusServiceUnavailable, shared.CodeStorageUnavailable)
	if !strings.Contains(eb.Message, "disk full") {
		t.Errorf("breaker message %q does not carry the last error", eb.Message)
	}
	e.srv.health.check(context.Background())
	code, h := getHealth(t, e)
	if code != http.StatusServiceUnavailable || h.Storage.Breaker != "OPEN" || h.Storage.Writable {
		t.Errorf("health = %d %+v", code, h.Storage)
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
}

func TestRealStorePermissionDenied(t *testing.T) {
	t.Parallel()
	e, ffs := newFSEnv(t)
	ffs.fail(syscall.EACCES)
	eb := wantError(t, e.post(snap("default", t0, 1)), http.StatusInternalServerError, shared.CodeStoragePermissionDenied)
	if !strings.Contains(eb.Message, "permission denied") || !strings.Contains(eb.Message, "owner") {
		t.Errorf("message %q", eb.Message)
	}
	// An idempotent replay of a stored snapshot needs no disk.
	ffs.fail(nil)
	r := e.post(snap("default", t0, 1), shared.HeaderIdempotencyKey, "k1")
	if r.status != http.StatusCreated {
		t.Fatalf("POST = %d %s", r.status, r.body)
	}
	ffs.fail(syscall.EROFS)
	if r := e.post(snap("default", t0, 1), shared.HeaderIdempotencyKey, "k1"); r.status != http.StatusOK {
		t.Errorf("replay while the disk fails = %d %s", r.status, r.body)
	}
}
