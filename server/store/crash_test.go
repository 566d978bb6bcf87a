package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/atomicfile"
)

const crashChildEnv = "STORE_TEST_CRASH_CHILD_DIR"

// crashChild is the child process of TestCrashDuringWrites: it saves as fast
// as it can and prints one line per acknowledged save until it is killed
// (or, should the parent die, for at most 30 s).
func crashChild(dir string) int {
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir, Logger: testLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	base := time.Now().UTC()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		req := SaveRequest{Snapshot: snap("default", base.Add(time.Duration(i)*time.Second), float64(i%100)),
			IdempotencyKey: fmt.Sprintf("crash-%d", i), BodyHash: "h"}
		if _, err := s.Save(ctx, req); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
		fmt.Printf("saved %d\n", i)
	}
	return 0
}

// TestCrashDuringWrites SIGKILLs a process that is saving, then checks that
// the store it leaves opens cleanly: every version file parses, no tmp file
// survives Open, the index matches the files, and saving works.
func TestCrashDuringWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const acked = 40

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	// Bound the wait for the child's progress: a stuck child is killed,
	// which ends the read loop below with EOF.
	guard := time.AfterFunc(20*time.Second, func() { _ = cmd.Process.Kill() })
	defer guard.Stop()

	sc := bufio.NewScanner(out)
	n := 0
	for n < acked && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "saved ") {
			n++
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	werr := cmd.Wait()
	waited = true
	if n < acked {
		t.Fatalf("child acknowledged %d saves, want %d; exit %v; stderr: %s", n, acked, werr, stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed by SIGKILL: %v; stderr: %s", werr, stderr.String())
	}

	before := listVersions(t, dir, "default")
	versions := 0
	for _, name := range before {
		if strings.HasPrefix(name, atomicfile.TmpPrefix) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, "default", versionsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseRecord(data, "default", name); err != nil {
			t.Errorf("version file %s does not parse after the crash: %v", name, err)
		}
		versions++
	}
	t.Logf("after SIGKILL: %d acknowledged, %d version files, %d tmp files", n, versions, countTmp(before))
	if versions < n {
		t.Errorf("%d version files, but %d saves were acknowledged", versions, n)
	}

	s := openTest(t, dir, nil)
	after := listVersions(t, dir, "default")
	if got := countTmp(after); got != 0 {
		t.Errorf("%d tmp files left after Open", got)
	}
	if got, want := s.Count("default"), len(after); got != want {
		t.Errorf("index count = %d, version files = %d", got, want)
	}
	if got, want := s.Count("default"), versions; got != want {
		t.Errorf("index count = %d, want %d", got, want)
	}
	if got := s.Status().CorruptFiles; got != 0 {
		t.Errorf("CorruptFiles = %d after a crash, want 0", got)
	}
	// A key acknowledged before the crash replays.
	res, err := s.Save(context.Background(), SaveRequest{IdempotencyKey: "crash-0", BodyHash: "h",
		Snapshot: snap("default", time.Now(), 0)})
	if err != nil || !res.Replayed {
		t.Errorf("replay of an acknowledged key after the crash: Replayed=%v err=%v", res.Replayed, err)
	}
	v := mustSave(t, s, snap("default", time.Now().Add(time.Hour), 1))
	if got, want := v.Total, versions+1; got != want {
		t.Errorf("Total after a new save = %d, want %d", got, want)
	}
}
