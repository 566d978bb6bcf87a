package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLogBufferConcurrentWrites(t *testing.T) {
	var b LogBuffer
	done := make(chan struct{})
	for i := 0; i < 4; i++ {
		go func() {
			for j := 0; j < 100; j++ {
				_, _ = b.Write([]byte("x"))
			}
			done <- struct{}{}
		}()
	}
	for i := 0; i < 4; i++ {
		<-done
	}
	if got, want := len(b.String()), 400; got != want {
		t.Fatalf("len = %d, want %d", got, want)
	}
}

func TestRepoRootHoldsGoMod(t *testing.T) {
	root := MustRepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatal(err)
	}
}

func TestProcessLinesAndStop(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	// The trap first: a SIGTERM between "ready" and the trap would end the
	// shell by default, without "bye" (seen once in CI).
	p := StartProcess(t, sh, []string{"-c", "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done"}, ProcessOptions{})
	if err := p.WaitLine("ready", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Stop()
	select {
	case <-p.Done():
	default:
		t.Fatal("process still running after Stop")
	}
	if !strings.Contains(p.Log.String(), "bye") {
		t.Errorf("SIGTERM not delivered; log: %q", p.Log.String())
	}
}

func TestWaitLineReportsExit(t *testing.T) {
	p := StartProcess(t, "sh", []string{"-c", "echo nope; exit 3"}, ProcessOptions{})
	err := p.WaitLine("ready", 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("err = %v, want an exit report", err)
	}
}

func TestFreeAddrIsLoopback(t *testing.T) {
	if a := FreeAddr(t); !strings.HasPrefix(a, "127.0.0.1:") {
		t.Fatalf("addr = %q", a)
	}
}
