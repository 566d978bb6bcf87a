package testutil

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a real child process with stdout and stderr captured in Log.
// It is stopped by the test's cleanup if the test did not stop it.
type Process struct {
	Log *LogBuffer

	t    testing.TB
	name string
	args []string
	env  []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, once done is closed
}

// ProcessOptions are optional settings of StartProcess.
type ProcessOptions struct {
	Env []string // nil: the test's environment
	Dir string
	// Log, when set, receives the output instead of a new buffer (so
	// that a restarted process keeps one log).
	Log *LogBuffer
}

// StartProcess starts name with args. It fails the test if the binary
// cannot be started; use WaitLine or WaitHTTP to wait until it is ready.
func StartProcess(t testing.TB, name string, args []string, o ProcessOptions) *Process {
	t.Helper()
	p := &Process{t: t, name: name, args: args, env: o.Env, Log: o.Log}
	if p.Log == nil {
		p.Log = &LogBuffer{}
	}
	t.Cleanup(p.Stop)
	if err := p.start(o.Dir); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *Process) start(dir string) error {
	cmd := exec.Command(p.name, p.args...)
	cmd.Env, cmd.Dir = p.env, dir
	cmd.Stdout, cmd.Stderr = p.Log, p.Log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testutil: starting %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	return nil
}

// Restart starts the same command again after it has ended (Stop or Kill).
func (p *Process) Restart() {
	p.t.Helper()
	if err := p.start(""); err != nil {
		p.t.Fatal(err)
	}
}

// Pid is the running process's id.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Done is closed when the current process has exited.
func (p *Process) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// ExitErr is Wait's result; only meaningful once Done is closed.
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// WaitLine waits until the output holds a line containing s, the process
// exits, or timeout passes. The timeout bounds a real process's start; it
// is not a measurement.
func (p *Process) WaitLine(s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	done := p.Done()
	for {
		for _, line := range strings.Split(p.Log.String(), "\n") {
			if strings.Contains(line, s) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no line with %q within %v:\n%s", p.name, s, timeout, p.Log)
		}
		select {
		case <-done:
			if strings.Contains(p.Log.String(), s) {
				return nil
			}
			return fmt.Errorf("%s exited (%v) before printing %q:\n%s", p.name, p.ExitErr(), s, p.Log)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// WaitHTTP waits until url answers any HTTP status, the process exits, or
// timeout passes.
func (p *Process) WaitHTTP(url string, timeout time.Duration) error {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	done := p.Done()
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited (%v) at start:\n%s", p.name, p.ExitErr(), p.Log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer on %s within %v:\n%s", p.name, url, timeout, p.Log)
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Process) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Signal sends sig to the running process.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return errors.New("testutil: no process")
	}
	return cmd.Process.Signal(sig)
}

// Stop sends SIGTERM, waits up to 10 s for a clean exit, then SIGKILL.
// It returns at once when the process has already ended.
func (p *Process) Stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
