package store

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/claude-usage/widget/shared"
)

// TestRealDiskFull fills a real size-limited tmpfs and checks that a save
// fails as STORAGE_DISK_FULL with the free bytes in the message and leaves
// no tmp file; that three such saves open the breaker; and that once space
// is freed the background write check closes it within RecoveryEvery (on
// the bubble's clock: the disk is real, the waiting is not).
func TestRealDiskFull(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a size-limited tmpfs; ENOSPC is also covered by the injected-FS tests")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { // after the bubble, so after the store is closed
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	bubble(t, func(t *testing.T) {
		s := openTest(t, mnt, nil)
		ctx := context.Background()
		mustSave(t, s, snap("default", t0, 1))

		filler := filepath.Join(mnt, "filler")
		f, err := os.Create(filler)
		if err != nil {
			t.Fatal(err)
		}
		chunk := make([]byte, 4096)
		var werr error
		for i := 0; i < 1000 && werr == nil; i++ { // 4 MB bound: far more than the 256 KiB mount
			_, werr = f.Write(chunk)
		}
		_ = f.Close()
		if !errors.Is(werr, syscall.ENOSPC) {
			t.Fatalf("filling the tmpfs ended with %v, want ENOSPC", werr)
		}

		for i := range 3 {
			_, err = s.Save(ctx, SaveRequest{Snapshot: snap("default", t0.Add(time.Duration(i+1)), 2)})
			if got, want := codeOf(err), shared.CodeStorageDiskFull; got != want {
				t.Fatalf("save %d: code = %s, want %s (err %v)", i, got, want, err)
			}
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("error %v does not keep ENOSPC", err)
		}
		msg := err.(*shared.Error).Message
		for _, want := range []string{"storage: disk full writing", "(free 0 bytes, dir mode d", "owner 0:0)"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q does not contain %q", msg, want)
			}
		}
		if got, want := shared.CodeStorageDiskFull.Status(), 507; got != want {
			t.Errorf("status = %d, want %d", got, want)
		}
		if st := s.Status(); st.Writable || st.FreeBytes != 0 || st.Breaker != shared.StateOpen {
			t.Errorf("Status Writable=%v FreeBytes=%d Breaker=%v, want false, 0, OPEN", st.Writable, st.FreeBytes, st.Breaker)
		}
		ents, _ := os.ReadDir(mnt)
		if got := countTmp(names(ents)) + countTmp(listVersions(t, mnt, "default")); got != 0 {
			t.Errorf("%d tmp files left on the full disk", got)
		}

		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for s.Status().Breaker != shared.StateClosed {
			if time.Since(start) > RecoveryEvery {
				t.Fatalf("breaker still %v %v after space was freed", s.Status().Breaker, RecoveryEvery)
			}
			time.Sleep(100 * time.Millisecond)
			synctest.Wait() // a check due now has run
		}
		t.Logf("writes accepted again %v after space was freed", time.Since(start))
		v := mustSave(t, s, snap("default", t0.Add(time.Minute), 3))
		if got, want := v.Total, 2; got != want {
			t.Errorf("Total after freeing space = %d, want %d", got, want)
		}
	})
}
