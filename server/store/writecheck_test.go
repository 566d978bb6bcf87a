package store

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/shared"
)

// fakeProbe is a WriteCheck probe that answers what the test sends on
// results, or fails when the store closes.
type fakeProbe struct {
	results chan *shared.Error
	calls   atomic.Int32
	figure  int // recorded under the check's lock, like a backend's figures
}

func (p *fakeProbe) probe(ctx context.Context) func() *shared.Error {
	n := int(p.calls.Add(1))
	var r *shared.Error
	select {
	case r = <-p.results:
	case <-ctx.Done():
		r = shared.Errorf(shared.CodeStorageWriteFailed, "closed")
	}
	return func() *shared.Error {
		p.figure = n
		return r
	}
}

// newCheck returns a WriteCheck with a fake probe; its Lifecycle is closed
// at the end of the test, which must run in a bubble.
func newCheck(t *testing.T, cfg WriteCheckConfig) (*WriteCheck, *fakeProbe, *testutil.LogBuffer) {
	t.Helper()
	p := &fakeProbe{results: make(chan *shared.Error)}
	logs := &testutil.LogBuffer{}
	life := NewLifecycle()
	t.Cleanup(func() { life.Close() })
	cfg.Probe = p.probe
	cfg.Log = slog.New(slog.NewJSONHandler(logs, nil))
	if cfg.Where == "" {
		cfg.Where, cfg.LogKey, cfg.Subject = "/data", "dir", "storage"
	}
	if cfg.Unanswered == "" {
		cfg.Unanswered = shared.CodeStorageWriteFailed
	}
	return NewWriteCheck(life, cfg), p, logs
}

// checkAsync runs Check in a goroutine; the channel gets its error.
func checkAsync(ctx context.Context, w *WriteCheck) <-chan error {
	c := make(chan error, 1)
	go func() { c <- w.Check(ctx) }()
	return c
}

func TestWriteCheckSharesOneProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, p, _ := newCheck(t, WriteCheckConfig{})
		var waits []<-chan error
		for range 3 {
			waits = append(waits, checkAsync(context.Background(), w))
		}
		synctest.Wait()
		if got, want := p.calls.Load(), int32(1); got != want {
			t.Fatalf("probes for 3 concurrent checks = %d, want %d", got, want)
		}
		if st := w.Status(nil); !st.Checking {
			t.Errorf("Status while the probe runs: Checking = false, want true")
		}
		p.results <- nil
		for i, c := range waits {
			if err := <-c; err != nil {
				t.Errorf("check %d: %v, want nil", i, err)
			}
		}
		st := w.Status(func(st *Status) { st.CorruptFiles = p.figure })
		if !st.Writable || st.WriteErr != nil || st.Checking || !st.CheckedAt.Equal(time.Now()) {
			t.Errorf("Status after a passing check = %+v, want writable, checked now, not checking", st)
		}
		if got, want := st.CorruptFiles, 1; got != want {
			t.Errorf("figure recorded by the probe = %d, want %d", got, want)
		}
		if got, want := st.Dir, "/data"; got != want {
			t.Errorf("Status.Dir = %q, want %q", got, want)
		}
	})
}

// TestWriteCheckHung: a caller stops waiting when its ctx ends, with the
// backend's code; the probe goes on, and after ProbeStuckAfter Status says
// not writable until the probe answers.
func TestWriteCheckHung(t *testing.T) {
	for _, code := range []shared.Code{shared.CodeStorageWriteFailed, shared.CodeStorageUnavailable} {
		t.Run(string(code), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w, p, _ := newCheck(t, WriteCheckConfig{Where: "db", LogKey: "database", Subject: "database", Unanswered: code})
				first := checkAsync(context.Background(), w)
				synctest.Wait()
				p.results <- nil
				if err := <-first; err != nil {
					t.Fatalf("first check: %v", err)
				}

				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				err := w.Check(ctx)
				if got := codeOf(err); got != code || !strings.Contains(err.Error(), "write check of db did not answer in time") {
					t.Errorf("check that timed out: %v (code %q), want code %q, did not answer in time", err, got, code)
				}
				time.Sleep(ProbeStuckAfter - 200*time.Millisecond)
				if st := w.Status(nil); !st.Writable || !st.Checking {
					t.Errorf("Status %s into the check = %+v, want still writable, checking", time.Since(start), st)
				}
				time.Sleep(time.Second)
				st := w.Status(nil)
				if got := codeOf(st.WriteErr); st.Writable || got != code || !strings.Contains(st.WriteErr.Error(), "has not answered for 1s") {
					t.Errorf("Status %s into the check = %+v, want not writable, code %q, has not answered for 1s", time.Since(start), st, code)
				}
				if got, want := p.calls.Load(), int32(2); got != want {
					t.Errorf("probes = %d, want %d", got, want)
				}
				p.results <- nil
				synctest.Wait()
				if st := w.Status(nil); !st.Writable || st.Checking {
					t.Errorf("Status after the hung probe answered = %+v, want writable, not checking", st)
				}
			})
		})
	}
}

// TestWriteCheckResults: a failing probe's error is Check's and Status's;
// the transitions are logged once each, under the backend's key.
func TestWriteCheckResults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, p, logs := newCheck(t, WriteCheckConfig{})
		full := shared.Errorf(shared.CodeStorageDiskFull, "storage: disk full")
		for i, res := range []*shared.Error{full, full, nil, nil} {
			c := checkAsync(context.Background(), w)
			synctest.Wait()
			p.results <- res
			err := <-c
			if res == nil {
				if err != nil {
					t.Errorf("check %d: %v, want nil", i, err)
				}
				continue
			}
			if got, want := codeOf(err), shared.CodeStorageDiskFull; got != want {
				t.Errorf("check %d: code %q, want %q", i, got, want)
			}
			if st := w.Status(nil); st.Writable || st.WriteErr != error(full) {
				t.Errorf("Status after check %d = %+v, want not writable with the probe's error", i, st)
			}
		}
		bad := testutil.LogRecords(t, logs.String(), "storage not writable")
		if got, want := len(bad), 1; got != want {
			t.Fatalf("\"storage not writable\" lines = %d, want %d", got, want)
		}
		if bad[0]["dir"] != "/data" || bad[0]["code"] != string(shared.CodeStorageDiskFull) {
			t.Errorf("\"storage not writable\" line = %v, want dir /data, code %s", bad[0], shared.CodeStorageDiskFull)
		}
		if got, want := len(testutil.LogRecords(t, logs.String(), "storage writable again")), 1; got != want {
			t.Errorf("\"storage writable again\" lines = %d, want %d", got, want)
		}
	})
}

// TestWriteCheckAfterClose: Close stops a probe in flight through its ctx
// and waits for it; a check after Close fails and starts no probe.
func TestWriteCheckAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, p, _ := newCheck(t, WriteCheckConfig{})
		c := checkAsync(context.Background(), w)
		synctest.Wait()
		if got, want := w.life.Close(), true; got != want {
			t.Fatalf("Close = %v, want %v", got, want)
		}
		if err := <-c; err == nil {
			t.Error("the check Close interrupted passed")
		}
		if st := w.Status(nil); st.Checking {
			t.Error("Close returned while the probe was running")
		}
		if got, want := codeOf(w.Check(context.Background())), shared.CodeStorageUnavailable; got != want {
			t.Errorf("Check after Close: code %q, want %q", got, want)
		}
		if got, want := p.calls.Load(), int32(1); got != want {
			t.Errorf("probes = %d, want %d (none after Close)", got, want)
		}
	})
}

// openBreaker records the failures that open w's breaker.
func openBreaker(t *testing.T, w *WriteCheck) {
	t.Helper()
	for range 3 {
		done, err := w.Breaker().Allow()
		if err != nil {
			t.Fatalf("breaker refused before it opened: %v", err)
		}
		done(false)
	}
	if got, want := w.Breaker().State(), shared.StateOpen; got != want {
		t.Fatalf("breaker after 3 failures: %v, want %v", got, want)
	}
}

// TestWriteCheckRecovery: while the breaker is open a check runs every
// RecoverEvery; a failing one leaves it open, a passing one closes it, and
// once it is closed no more checks run.
func TestWriteCheckRecovery(t *testing.T) {
	for _, tc := range []struct {
		name  string
		every time.Duration // the config's RecoverEvery
		want  time.Duration // the period the checks keep
	}{
		{"default", 0, RecoveryEvery},
		{"configured", 50 * time.Millisecond, 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w, p, logs := newCheck(t, WriteCheckConfig{Where: "db", LogKey: "database", Subject: "database", RecoverEvery: tc.every})
				w.StartRecovery()
				openBreaker(t, w)
				start := time.Now()
				var at []time.Duration
				for _, res := range []*shared.Error{shared.Errorf(shared.CodeStorageUnavailable, "down"), nil} {
					p.results <- res // blocks until the next check's probe takes it
					at = append(at, time.Since(start))
					synctest.Wait()
				}
				if want := []time.Duration{tc.want, 2 * tc.want}; len(at) != 2 || at[0] != want[0] || at[1] != want[1] {
					t.Errorf("recovery checks at %v, want %v", at, want)
				}
				if got, want := w.Breaker().State(), shared.StateClosed; got != want {
					t.Errorf("breaker after a passing check: %v, want %v", got, want)
				}
				lines := testutil.LogRecords(t, logs.String(), "database write check passed while the breaker was open; closing it")
				if len(lines) != 1 || lines[0]["database"] != "db" {
					t.Errorf("recovery log lines = %v, want one with database db", lines)
				}
				time.Sleep(3 * tc.want)
				if got, want := p.calls.Load(), int32(2); got != want {
					t.Errorf("probes = %d, want %d (none once the breaker closed)", got, want)
				}
			})
		})
	}
}

// TestWriteCheckRecoveryHung: a recovery check that hangs is given up
// after one period, the next ones join it rather than stacking probes, and
// once it answers the checks go on at the period's ticks.
func TestWriteCheckRecoveryHung(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, p, _ := newCheck(t, WriteCheckConfig{})
		w.StartRecovery()
		openBreaker(t, w)
		start := time.Now()
		time.Sleep(2*RecoveryEvery + RecoveryEvery/2)
		if got, want := p.calls.Load(), int32(1); got != want {
			t.Errorf("probes while one hangs = %d, want %d", got, want)
		}
		if got, want := w.Breaker().State(), shared.StateOpen; got != want {
			t.Errorf("breaker while the check hangs: %v, want %v", got, want)
		}
		p.results <- shared.Errorf(shared.CodeStorageWriteFailed, "late")
		p.results <- nil
		if got, want := time.Since(start), 3*RecoveryEvery; got != want {
			t.Errorf("next check after the hung one at %v, want %v", got, want)
		}
		synctest.Wait()
		if got, want := w.Breaker().State(), shared.StateClosed; got != want {
			t.Errorf("breaker after a passing check: %v, want %v", got, want)
		}
	})
}
