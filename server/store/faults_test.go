package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/shared"
)

const ms = time.Millisecond

func TestWriteErrorsAndRetries(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		errno     syscall.Errno
		times     int // -1: always
		wantCode  shared.Code
		wantWaits []time.Duration
		attempts  int
	}{
		{"ENOSPC fails at once as disk full", syscall.ENOSPC, -1, shared.CodeStorageDiskFull, nil, 1},
		{"EDQUOT fails at once as disk full", syscall.EDQUOT, -1, shared.CodeStorageDiskFull, nil, 1},
		{"EACCES fails at once", syscall.EACCES, -1, shared.CodeStoragePermissionDenied, nil, 1},
		{"EPERM fails at once", syscall.EPERM, -1, shared.CodeStoragePermissionDenied, nil, 1},
		{"EROFS fails at once", syscall.EROFS, -1, shared.CodeStoragePermissionDenied, nil, 1},
		{"EIO fails at once as write failed", syscall.EIO, -1, shared.CodeStorageWriteFailed, nil, 1},
		{"EAGAIN once then success", syscall.EAGAIN, 1, "", []time.Duration{100 * ms}, 2},
		{"EINTR twice then success", syscall.EINTR, 2, "", []time.Duration{100 * ms, 200 * ms}, 3},
		{"EBUSY three times then success", syscall.EBUSY, 3, "", []time.Duration{100 * ms, 200 * ms, 400 * ms}, 4},
		{"ETIMEDOUT always gives up after 3 retries", syscall.ETIMEDOUT, -1, shared.CodeStorageWriteFailed, []time.Duration{100 * ms, 200 * ms, 400 * ms}, 4},
		{"EBUSY always gives up after 3 retries", syscall.EBUSY, -1, shared.CodeStorageWriteFailed, []time.Duration{100 * ms, 200 * ms, 400 * ms}, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bubble(t, func(t *testing.T) {
				testWriteError(t, tc.errno, tc.times, tc.wantCode, tc.wantWaits, tc.attempts)
			})
		})
	}
}

// testWriteError saves once with errno injected into the version file's
// creation (times times) and checks the code, the waits between attempts
// (on the bubble's clock), the attempts and what is left on disk.
func testWriteError(t *testing.T, errno syscall.Errno, times int, wantCode shared.Code, wantWaits []time.Duration, attempts int) {
	dir := t.TempDir()
	ffs := newFaultFS()
	ffs.SetFree(1234)
	logs := &testutil.LogBuffer{}
	s := openTest(t, dir, func(o *Options) { o.FS = ffs; withLog(logs)(o) })
	// The version write fails; the write check before it does not.
	vdir := filepath.Join(s.Dir(), "default", versionsDir)
	ffs.Add(&testutil.Fault{Op: "CreateTemp", Path: vdir + "/", Err: errno, Times: times})

	start := time.Now()
	res, err := s.Save(context.Background(), SaveRequest{Snapshot: snap("default", t0, 5)})
	elapsed := time.Since(start)
	if got := codeOf(err); got != wantCode {
		t.Fatalf("code = %q, want %q (err %v)", got, wantCode, err)
	}
	var sum time.Duration
	for _, w := range wantWaits {
		sum += w
	}
	if got, want := elapsed, sum; got != want {
		t.Errorf("Save took %v on the fake clock, want the waits %v = %v", got, wantWaits, want)
	}
	transient := len(wantWaits) // one per failed attempt that was retried
	if wantCode != "" && transient > 0 {
		transient++ // and the last one, which was not
	}
	if got, want := len(testutil.LogRecords(t, logs.String(), "transient storage error")), transient; got != want {
		t.Errorf("transient-error log lines = %d, want %d", got, want)
	}
	if got, want := ffs.Count("CreateTemp", vdir+"/"), attempts; got != want {
		t.Errorf("write attempts = %d, want %d", got, want)
	}
	if got := countTmp(listVersions(t, dir, "default")); got != 0 {
		t.Errorf("%d tmp files left", got)
	}
	if wantCode == "" {
		if got, want := s.Count("default"), 1; got != want {
			t.Errorf("Count = %d, want %d", got, want)
		}
		if got, want := len(listVersions(t, dir, "default")), 1; got != want {
			t.Errorf("files = %d, want %d", got, want)
		}
		if res.Version.ID == "" {
			t.Error("no version returned")
		}
		return
	}
	if !errors.Is(err, errno) {
		t.Errorf("error %v does not keep %v", err, errno)
	}
	fi, serr := os.Stat(vdir)
	if serr != nil {
		t.Fatal(serr)
	}
	st := fi.Sys().(*syscall.Stat_t)
	var what string
	switch wantCode {
	case shared.CodeStorageDiskFull:
		what = "disk full"
	case shared.CodeStoragePermissionDenied:
		what = "permission denied"
	default:
		what = "write failed (" + errno.Error() + ")"
	}
	want := fmt.Sprintf("storage: %s writing %s (free 1234 bytes, dir mode %s owner %d:%d)",
		what, vdir, fi.Mode(), st.Uid, st.Gid)
	if got := err.(*shared.Error).Message; got != want {
		t.Errorf("message\n got: %s\nwant: %s", got, want)
	}
	if got, want := s.Count("default"), 0; got != want {
		t.Errorf("Count after a failed save = %d, want %d", got, want)
	}
}

// TestFailedWriteLeavesNothing fails each step of tmp → write → fsync →
// close → rename → fsync dir and checks that no tmp file and no version
// file remain, and that the next save works.
func TestFailedWriteLeavesNothing(t *testing.T) {
	t.Parallel()
	for _, op := range []string{"CreateTemp", "Write", "Chmod", "Sync", "Close", "Rename", "SyncDir"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ffs := newFaultFS()
			s := openTest(t, dir, func(o *Options) { o.FS = ffs })
			ctx := context.Background()
			mustSave(t, s, snap("default", t0, 1)) // the account's dirs exist
			vdir := filepath.Join(s.Dir(), "default", versionsDir)
			ffs.Add(&testutil.Fault{Op: op, Path: vdir, Err: syscall.EIO, Times: -1})

			_, err := s.Save(ctx, SaveRequest{Snapshot: snap("default", t0.Add(time.Minute), 2), IdempotencyKey: "k", BodyHash: "h"})
			if got, want := codeOf(err), shared.CodeStorageWriteFailed; got != want {
				t.Fatalf("code = %s, want %s (err %v)", got, want, err)
			}
			files := listVersions(t, dir, "default")
			if got := countTmp(files); got != 0 {
				t.Errorf("tmp files left: %v", files)
			}
			if got, want := len(files), 1; got != want {
				t.Errorf("files after the failed save = %v, want only the first version", files)
			}
			if got, want := s.Count("default"), 1; got != want {
				t.Errorf("Count = %d, want %d", got, want)
			}

			ffs.Clear()
			res, err := s.Save(ctx, SaveRequest{Snapshot: snap("default", t0.Add(time.Minute), 2), IdempotencyKey: "k", BodyHash: "h"})
			if err != nil {
				t.Fatalf("save after the fault cleared: %v", err)
			}
			if res.Replayed {
				t.Error("a failed save's key was remembered: Replayed = true")
			}
			if got, want := len(listVersions(t, dir, "default")), 2; got != want {
				t.Errorf("files = %d, want %d", got, want)
			}
		})
	}
}

func TestWriteCheckFailureFailsSave(t *testing.T) {
	t.Parallel()
	bubble(t, func(t *testing.T) {
		dir := t.TempDir()
		ffs := newFaultFS()
		ffs.SetFree(0)
		s := openTest(t, dir, func(o *Options) { o.FS = ffs })
		ffs.Add(&testutil.Fault{Op: "Write", Path: probePrefix, Err: syscall.ENOSPC, Times: -1})

		start := time.Now()
		_, err := s.Save(context.Background(), SaveRequest{Snapshot: snap("default", t0, 1)})
		if got, want := codeOf(err), shared.CodeStorageDiskFull; got != want {
			t.Fatalf("code = %s, want %s (err %v)", got, want, err)
		}
		if msg := err.(*shared.Error).Message; !strings.Contains(msg, "disk full writing a probe file in "+s.Dir()+" (free 0 bytes, dir mode d") {
			t.Errorf("message = %q", msg)
		}
		if got := ffs.Count("CreateTemp", versionsDir); got != 0 {
			t.Errorf("the version write ran %d times after the write check failed", got)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("ENOSPC was retried: the save waited %v", d)
		}
		st := s.Status()
		if st.Writable || codeOf(st.WriteErr) != shared.CodeStorageDiskFull {
			t.Errorf("Status Writable=%v WriteErr=%v, want false and DISK_FULL", st.Writable, st.WriteErr)
		}
		if ents, _ := os.ReadDir(dir); countTmp(names(ents)) != 0 {
			t.Errorf("probe file left behind: %v", names(ents))
		}

		ffs.Clear()
		ffs.SetFree(5 << 30)
		mustSave(t, s, snap("default", t0, 1))
		st = s.Status()
		if !st.Writable || st.WriteErr != nil || st.FreeBytes != 5<<30 || !st.CheckedAt.Equal(time.Now()) {
			t.Errorf("after recovery Status = %+v, want writable with 5 GiB free, checked now", st)
		}
	})
}

// TestBreaker runs the store breaker through its states on the bubble's
// clock, with a disk that fails every file creation: the write checks that
// run every RecoveryEvery while it is open fail too and neither close it
// nor extend its cooldown.
func TestBreaker(t *testing.T) {
	t.Parallel()
	bubble(t, func(t *testing.T) {
		dir := t.TempDir()
		ffs := newFaultFS()
		logs := &testutil.LogBuffer{}
		s := openTest(t, dir, func(o *Options) { o.FS = ffs; withLog(logs)(o) })
		ctx := context.Background()
		known := SaveRequest{Snapshot: snap("default", t0, 1), IdempotencyKey: "known", BodyHash: "h"}
		if _, err := s.Save(ctx, known); err != nil {
			t.Fatal(err)
		}
		ffs.Add(&testutil.Fault{Op: "CreateTemp", Err: syscall.EIO, Times: -1})

		for i := 1; i <= 3; i++ {
			_, err := s.Save(ctx, SaveRequest{Snapshot: snap("default", t0.Add(time.Duration(i)*time.Minute), 1)})
			if got, want := codeOf(err), shared.CodeStorageWriteFailed; got != want {
				t.Fatalf("failure %d: code = %s, want %s", i, got, want)
			}
		}
		if got, want := s.Status().Breaker, shared.StateOpen; got != want {
			t.Fatalf("after 3 failures Breaker = %v, want %v", got, want)
		}

		calls := len(ffs.Calls())
		_, err := s.Save(ctx, SaveRequest{Snapshot: snap("default", t0.Add(time.Hour), 1)})
		if got, want := codeOf(err), shared.CodeStorageUnavailable; got != want {
			t.Fatalf("open breaker: code = %s, want %s", got, want)
		}
		if got := len(ffs.Calls()) - calls; got != 0 {
			t.Errorf("open breaker made %d filesystem calls: %v", got, ffs.Calls()[calls:])
		}
		msg := err.(*shared.Error).Message
		for _, want := range []string{"3 consecutive failures", "next attempt in 1m0s", "last error: storage: write failed"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q does not contain %q", msg, want)
			}
		}
		if got := shared.CodeStorageUnavailable.Status(); got != 503 {
			t.Errorf("STORAGE_UNAVAILABLE maps to %d, want 503", got)
		}
		// A replay needs no disk and still answers while the breaker is open.
		if res, err := s.Save(ctx, known); err != nil || !res.Replayed {
			t.Errorf("replay while open: Replayed=%v err=%v", res.Replayed, err)
		}

		time.Sleep(shared.DefaultBreakerCooldown - time.Nanosecond)
		synctest.Wait()
		if got, want := s.Status().Breaker, shared.StateOpen; got != want {
			t.Fatalf("just before the cooldown ends Breaker = %v, want %v", got, want)
		}
		if got, want := ffs.Count("CreateTemp", probePrefix), 2+3+11; got != want {
			// Open's and the first save's, the three failed saves', and
			// one every 5 s while open.
			t.Errorf("probe file creations = %d, want %d", got, want)
		}
		time.Sleep(time.Nanosecond)
		if got, want := s.Status().Breaker, shared.StateHalfOpen; got != want {
			t.Fatalf("after the cooldown Breaker = %v, want %v", got, want)
		}
		// The probe still fails: open again for another cooldown.
		if _, err := s.Save(ctx, SaveRequest{Snapshot: snap("default", t0.Add(2*time.Hour), 1)}); codeOf(err) != shared.CodeStorageWriteFailed {
			t.Fatalf("half-open probe: err = %v, want STORAGE_WRITE_FAILED", err)
		}
		if got, want := s.Status().Breaker, shared.StateOpen; got != want {
			t.Fatalf("after a failed probe Breaker = %v, want %v", got, want)
		}

		// The disk recovers: the next background check closes the breaker.
		ffs.Clear()
		time.Sleep(RecoveryEvery)
		synctest.Wait()
		if got, want := s.Status().Breaker, shared.StateClosed; got != want {
			t.Errorf("a passing background check left Breaker = %v, want %v", got, want)
		}
		v := mustSave(t, s, snap("default", t0.Add(3*time.Hour), 1))
		if got, want := v.Total, 2; got != want {
			t.Errorf("Total = %d, want %d", got, want)
		}
		want := []string{"CLOSED->OPEN", "OPEN->HALF_OPEN", "HALF_OPEN->OPEN", "OPEN->CLOSED"}
		if got := transitions(t, logs); !slices.Equal(got, want) {
			t.Errorf("transitions = %v, want %v", got, want)
		}
	})
}

// TestBreakerClosesWhenDiskHasRoomAgain is the recovery rule: after a disk
// full opened the breaker, writes are accepted within RecoveryEvery of the
// disk having room, not after the whole cooldown.
func TestBreakerClosesWhenDiskHasRoomAgain(t *testing.T) {
	t.Parallel()
	bubble(t, func(t *testing.T) {
		ffs := newFaultFS()
		s := openTest(t, t.TempDir(), func(o *Options) { o.FS = ffs })
		ctx := context.Background()
		ffs.Add(&testutil.Fault{Op: "Write", Err: syscall.ENOSPC, Times: -1})
		for i := range 3 {
			if _, err := s.Save(ctx, SaveRequest{Snapshot: snap("default", t0.Add(time.Duration(i)*time.Second), 1)}); codeOf(err) != shared.CodeStorageDiskFull {
				t.Fatalf("save %d on a full disk: %v, want STORAGE_DISK_FULL", i, err)
			}
		}
		if got, want := s.Status().Breaker, shared.StateOpen; got != want {
			t.Fatalf("Breaker = %v, want %v", got, want)
		}
		time.Sleep(2 * time.Second)
		ffs.Clear() // the operator freed space

		time.Sleep(RecoveryEvery - 2*time.Second - time.Nanosecond)
		synctest.Wait()
		if _, err := s.Save(ctx, SaveRequest{Snapshot: snap("default", t0.Add(time.Minute), 2)}); codeOf(err) != shared.CodeStorageUnavailable {
			t.Fatalf("save before the first background check = %v, want STORAGE_UNAVAILABLE", err)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got, want := s.Status().Breaker, shared.StateClosed; got != want {
			t.Fatalf("%v after the disk full began, Breaker = %v, want %v", RecoveryEvery, got, want)
		}
		if _, err := s.Save(ctx, SaveRequest{Snapshot: snap("default", t0.Add(time.Minute), 2)}); err != nil {
			t.Fatalf("save after the check passed: %v", err)
		}
	})
}

// TestCheckWritableHonoursContext blocks the probe's file creation like a
// hung disk: callers return when their ctx ends, Status answers without
// touching the disk and reports the hang after ProbeStuckAfter, and the
// probe finishes once the disk answers.
func TestCheckWritableHonoursContext(t *testing.T) {
	t.Parallel()
	bubble(t, func(t *testing.T) {
		ffs := newFaultFS()
		s := openTest(t, t.TempDir(), func(o *Options) { o.FS = ffs })
		release := make(chan struct{})
		ft := ffs.Add(&testutil.Fault{Op: "CreateTemp", Path: probePrefix, Block: release, Times: 1})

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.CheckWritable(ctx) }()
		<-ft.Entered

		calls := len(ffs.Calls())
		time.Sleep(ProbeStuckAfter)
		if st := s.Status(); !st.Writable || !st.Checking {
			t.Errorf("a probe running for %v: Writable=%v (%v) Checking=%v, want writable and checking", ProbeStuckAfter, st.Writable, st.WriteErr, st.Checking)
		}
		time.Sleep(time.Second)
		st := s.Status()
		if st.Writable || st.WriteErr == nil || !strings.Contains(st.WriteErr.Error(), "has not answered for 2s") {
			t.Errorf("Status during a 2 s hang: Writable=%v WriteErr=%v", st.Writable, st.WriteErr)
		}
		if got := len(ffs.Calls()) - calls; got != 0 {
			t.Errorf("Status made %d filesystem calls", got)
		}

		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("CheckWritable after cancel = %v, want context.Canceled", err)
		}

		// A second caller joins the same hung probe instead of starting another.
		dctx, dcancel := context.WithTimeout(context.Background(), time.Second)
		defer dcancel()
		if err := s.CheckWritable(dctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("CheckWritable with a 1 s deadline = %v, want DeadlineExceeded", err)
		}
		if got, want := ffs.Count("CreateTemp", probePrefix), 2; got != want { // Open's probe + the hung one
			t.Errorf("probe file creations = %d, want %d", got, want)
		}

		close(release)
		if err := s.CheckWritable(context.Background()); err != nil {
			t.Errorf("CheckWritable after the disk answered: %v", err)
		}
		if st := s.Status(); !st.Writable || st.Checking {
			t.Errorf("Status after recovery: Writable=%v (%v) Checking=%v", st.Writable, st.WriteErr, st.Checking)
		}
	})
}

func TestOpenReadError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFixture(t, dir, "default", 3, t0)
	ffs := newFaultFS()
	ffs.Add(&testutil.Fault{Op: "ReadFile", Path: versionsDir, Err: syscall.EACCES, Times: -1})
	_, err := Open(context.Background(), Options{Dir: dir, FS: ffs, Logger: testLogger()})
	if got, want := codeOf(err), shared.CodeStorageReadFailed; got != want {
		t.Fatalf("Open code = %s, want %s (err %v)", got, want, err)
	}
	if msg := err.(*shared.Error).Message; !strings.Contains(msg, "storage: permission denied reading "+filepath.Join(dir, "default", versionsDir)) ||
		!strings.Contains(msg, "free ") || !strings.Contains(msg, "owner ") {
		t.Errorf("message = %q", msg)
	}
}

func TestStatusTouchesNoDisk(t *testing.T) {
	t.Parallel()
	ffs := newFaultFS()
	s := openTest(t, t.TempDir(), func(o *Options) { o.FS = ffs })
	mustSave(t, s, snap("default", t0, 1))
	calls := len(ffs.Calls())
	for range 10 {
		s.Status()
		s.Accounts()
		s.Count("default")
		if _, err := s.Latest(context.Background(), "default"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.History(context.Background(), "default", time.Time{}, 10); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(ffs.Calls()) - calls; got != 0 {
		t.Errorf("Status and reads made %d filesystem calls: %v", got, ffs.Calls()[calls:])
	}
}

// TestRetryStopsWithContext: a save whose ctx ends while it waits to retry
// a transient error returns then, with the disk's error kept.
func TestRetryStopsWithContext(t *testing.T) {
	t.Parallel()
	bubble(t, func(t *testing.T) {
		ffs := newFaultFS()
		s := openTest(t, t.TempDir(), func(o *Options) { o.FS = ffs })
		ffs.Add(&testutil.Fault{Op: "CreateTemp", Path: versionsDir, Err: syscall.EBUSY, Times: -1})
		ctx, cancel := context.WithTimeout(context.Background(), 150*ms)
		defer cancel()
		start := time.Now()
		_, err := s.Save(ctx, SaveRequest{Snapshot: snap("default", t0, 1)})
		if got, want := time.Since(start), 150*ms; got != want {
			t.Errorf("Save returned after %v, want %v (its deadline)", got, want)
		}
		if got, want := codeOf(err), shared.CodeStorageWriteFailed; got != want {
			t.Errorf("code = %s, want %s (err %v)", got, want, err)
		}
		if !errors.Is(err, syscall.EBUSY) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err %v does not keep EBUSY and the deadline", err)
		}
		if got, want := ffs.Count("CreateTemp", versionsDir), 2; got != want {
			t.Errorf("attempts = %d, want %d (at 0 and 100 ms)", got, want)
		}
	})
}
