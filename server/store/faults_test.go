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
	"time"

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
			dir := t.TempDir()
			ffs := newFaultFS()
			ffs.setFree(1234)
			var codes []shared.Code
			s, _, sl := openTest(t, dir, func(o *Options) {
				o.FS = ffs
				o.OnWrite = func(_ time.Duration, c shared.Code) { codes = append(codes, c) }
			})
			// The version write fails; the write check before it does not.
			vdir := filepath.Join(s.Dir(), "default", versionsDir)
			ffs.add(&fault{op: "CreateTemp", path: vdir + "/", err: tc.errno, times: tc.times})

			res, err := s.Save(context.Background(), SaveRequest{Snapshot: snap("default", t0, 5)})
			if got := codeOf(err); got != tc.wantCode {
				t.Fatalf("code = %q, want %q (err %v)", got, tc.wantCode, err)
			}
			if got, want := codes, []shared.Code{tc.wantCode}; !slices.Equal(got, want) {
				t.Errorf("OnWrite codes = %q, want %q", got, want)
			}
			if got, want := sl.Waits(), tc.wantWaits; !slices.Equal(got, want) {
				t.Errorf("waits = %v, want %v", got, want)
			}
			if got, want := ffs.count("CreateTemp", vdir+"/"), tc.attempts; got != want {
				t.Errorf("write attempts = %d, want %d", got, want)
			}
			if got := countTmp(listVersions(t, dir, "default")); got != 0 {
				t.Errorf("%d tmp files left", got)
			}
			if tc.wantCode == "" {
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
			if !errors.Is(err, tc.errno) {
				t.Errorf("error %v does not keep %v", err, tc.errno)
			}
			fi, serr := os.Stat(vdir)
			if serr != nil {
				t.Fatal(serr)
			}
			st := fi.Sys().(*syscall.Stat_t)
			var what string
			switch tc.wantCode {
			case shared.CodeStorageDiskFull:
				what = "disk full"
			case shared.CodeStoragePermissionDenied:
				what = "permission denied"
			default:
				what = "write failed (" + tc.errno.Error() + ")"
			}
			want := fmt.Sprintf("storage: %s writing %s (free 1234 bytes, dir mode %s owner %d:%d)",
				what, vdir, fi.Mode(), st.Uid, st.Gid)
			if got := err.(*shared.Error).Message; got != want {
				t.Errorf("message\n got: %s\nwant: %s", got, want)
			}
			if got, want := s.Count("default"), 0; got != want {
				t.Errorf("Count after a failed save = %d, want %d", got, want)
			}
		})
	}
}

// TestFailedWriteLeavesNothing fails each step of tmp → write → fsync →
// close → rename → fsync dir and checks that no tmp file and no version
// file remain, and that the next save works.
func TestFailedWriteLeavesNothing(t *testing.T) {
	t.Parallel()
	for _, op := range []string{"CreateTemp", "Write", "Sync", "Close", "Rename", "SyncDir"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ffs := newFaultFS()
			s, _, _ := openTest(t, dir, func(o *Options) { o.FS = ffs })
			ctx := context.Background()
			mustSave(t, s, snap("default", t0, 1)) // the account's dirs exist
			vdir := filepath.Join(s.Dir(), "default", versionsDir)
			ffs.add(&fault{op: op, path: vdir, err: syscall.EIO, times: -1})

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

			ffs.clear()
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
	dir := t.TempDir()
	ffs := newFaultFS()
	ffs.setFree(0)
	s, _, sl := openTest(t, dir, func(o *Options) { o.FS = ffs })
	ffs.add(&fault{op: "Write", path: probePrefix, err: syscall.ENOSPC, times: -1})

	_, err := s.Save(context.Background(), SaveRequest{Snapshot: snap("default", t0, 1)})
	if got, want := codeOf(err), shared.CodeStorageDiskFull; got != want {
		t.Fatalf("code = %s, want %s (err %v)", got, want, err)
	}
	if msg := err.(*shared.Error).Message; !strings.Contains(msg, "disk full writing a probe file in "+s.Dir()+" (free 0 bytes, dir mode d") {
		t.Errorf("message = %q", msg)
	}
	if got := ffs.count("CreateTemp", versionsDir); got != 0 {
		t.Errorf("the version write ran %d times after the write check failed", got)
	}
	if len(sl.Waits()) != 0 {
		t.Errorf("ENOSPC was retried: waits %v", sl.Waits())
	}
	st := s.Status()
	if st.Writable || codeOf(st.WriteErr) != shared.CodeStorageDiskFull {
		t.Errorf("Status Writable=%v WriteErr=%v, want false and DISK_FULL", st.Writable, st.WriteErr)
	}
	if ents, _ := os.ReadDir(dir); countTmp(names(ents)) != 0 {
		t.Errorf("probe file left behind: %v", names(ents))
	}

	ffs.clear()
	ffs.setFree(5 << 30)
	mustSave(t, s, snap("default", t0, 1))
	st = s.Status()
	if !st.Writable || st.WriteErr != nil || st.FreeBytes != 5<<30 {
		t.Errorf("after recovery Status = %+v, want writable with 5 GiB free", st)
	}
}

func TestBreaker(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ffs := newFaultFS()
	var transitions []string
	s, clk, _ := openTest(t, dir, func(o *Options) {
		o.FS = ffs
		o.OnTransition = func(tr shared.Transition) { transitions = append(transitions, tr.From.String()+"->"+tr.To.String()) }
	})
	ctx := context.Background()
	known := SaveRequest{Snapshot: snap("default", t0, 1), IdempotencyKey: "known", BodyHash: "h"}
	if _, err := s.Save(ctx, known); err != nil {
		t.Fatal(err)
	}
	vdir := filepath.Join(s.Dir(), "default", versionsDir)
	ffs.add(&fault{op: "Rename", path: vdir, err: syscall.EIO, times: -1})

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

	clk.Advance(60 * time.Second)
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

	clk.Advance(60 * time.Second)
	ffs.clear()
	v := mustSave(t, s, snap("default", t0.Add(3*time.Hour), 1))
	if got, want := s.Status().Breaker, shared.StateClosed; got != want {
		t.Errorf("after a good probe Breaker = %v, want %v", got, want)
	}
	if got, want := v.Total, 2; got != want {
		t.Errorf("Total = %d, want %d", got, want)
	}
	want := []string{"CLOSED->OPEN", "OPEN->HALF_OPEN", "HALF_OPEN->OPEN", "OPEN->HALF_OPEN", "HALF_OPEN->CLOSED"}
	if !slices.Equal(transitions, want) {
		t.Errorf("transitions = %v, want %v", transitions, want)
	}
}

// TestCheckWritableHonoursContext blocks the probe's file creation like a
// hung disk: callers return when their ctx ends, Status answers without
// touching the disk and reports the hang, and the probe finishes once the
// disk answers.
func TestCheckWritableHonoursContext(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ffs := newFaultFS()
	s, clk, _ := openTest(t, dir, func(o *Options) { o.FS = ffs })
	release := make(chan struct{})
	ft := ffs.add(&fault{op: "CreateTemp", path: probePrefix, block: release, times: 1})
	var once bool
	unblock := func() {
		if !once {
			once = true
			close(release)
		}
	}
	t.Cleanup(unblock) // runs before the store's Close

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.CheckWritable(ctx) }()
	<-ft.entered

	calls := len(ffs.Calls())
	st := s.Status()
	if !st.Writable {
		t.Errorf("a probe running for less than a second already reads as not writable: %v", st.WriteErr)
	}
	clk.Advance(2 * time.Second)
	st = s.Status()
	if st.Writable || st.WriteErr == nil || !strings.Contains(st.WriteErr.Error(), "has not answered for 2s") {
		t.Errorf("Status during a 2 s hang: Writable=%v WriteErr=%v", st.Writable, st.WriteErr)
	}
	if got := len(ffs.Calls()) - calls; got != 0 {
		t.Errorf("Status made %d filesystem calls", got)
	}

	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Errorf("CheckWritable after cancel = %v, want context.Canceled", err)
	}

	// A second caller joins the same hung probe instead of starting another.
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now())
	defer dcancel()
	if err := s.CheckWritable(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CheckWritable with an expired deadline = %v, want DeadlineExceeded", err)
	}
	if got, want := ffs.count("CreateTemp", probePrefix), 2; got != want { // Open's probe + the hung one
		t.Errorf("probe file creations = %d, want %d", got, want)
	}

	unblock()
	if err := s.CheckWritable(context.Background()); err != nil {
		t.Errorf("CheckWritable after the disk answered: %v", err)
	}
	if st := s.Status(); !st.Writable {
		t.Errorf("Status after recovery: Writable=false (%v)", st.WriteErr)
	}
}

func TestOpenReadError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFixture(t, dir, "default", 3, t0)
	ffs := newFaultFS()
	ffs.add(&fault{op: "ReadFile", path: versionsDir, err: syscall.EACCES, times: -1})
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
	s, _, _ := openTest(t, t.TempDir(), func(o *Options) { o.FS = ffs })
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

func TestSleepHonoursContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleepCtx(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("sleepCtx with a cancelled ctx = %v, want context.Canceled", err)
	}
}
