package shared

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The tests run in synctest bubbles: the breaker reads time.Now, and
// sleeping moves the bubble's fake clock, so a cooldown passes at once.
func newTestBreaker(t *testing.T) (*Breaker, *[]Transition) {
	t.Helper()
	var ts []Transition
	b := NewBreaker(BreakerConfig{Name: "test", OnTransition: func(tr Transition) { ts = append(ts, tr) }})
	return b, &ts
}

var errFail = errors.New("fail")

func fail() error    { return errFail }
func succeed() error { return nil }

func TestBreakerOpensOnThirdFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, ts := newTestBreaker(t)
		for i := 1; i <= 2; i++ {
			if err := b.Execute(fail); !errors.Is(err, errFail) {
				t.Fatalf("failure %d: err = %v", i, err)
			}
			if got, want := b.State(), StateClosed; got != want {
				t.Fatalf("after %d failures state = %s, want %s", i, got, want)
			}
		}
		_ = b.Execute(fail)
		if got, want := b.State(), StateOpen; got != want {
			t.Fatalf("after 3 failures state = %s, want %s", got, want)
		}
		if got, want := b.RetryIn(), 60*time.Second; got != want {
			t.Errorf("RetryIn = %v, want %v", got, want)
		}
		if len(*ts) != 1 {
			t.Fatalf("transitions = %+v, want 1", *ts)
		}
		tr := (*ts)[0]
		if tr.From != StateClosed || tr.To != StateOpen || tr.Failures != 3 || !tr.At.Equal(time.Now()) || tr.Name != "test" {
			t.Errorf("transition = %+v", tr)
		}
	})
}

func TestBreakerSuccessResetsCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := newTestBreaker(t)
		_ = b.Execute(fail)
		_ = b.Execute(fail)
		_ = b.Execute(succeed)
		_ = b.Execute(fail)
		_ = b.Execute(fail)
		if got, want := b.State(), StateClosed; got != want {
			t.Fatalf("state = %s, want %s (failures must be consecutive)", got, want)
		}
		if got, want := b.Failures(), 2; got != want {
			t.Errorf("failures = %d, want %d", got, want)
		}
	})
}

func TestBreakerBlocksForCooldown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := newTestBreaker(t)
		for range 3 {
			_ = b.Execute(fail)
		}
		calls := 0
		call := func() error { calls++; return nil }
		time.Sleep(59*time.Second + 999*time.Millisecond)
		if err := b.Execute(call); !errors.Is(err, ErrOpen) {
			t.Fatalf("at 59.999s err = %v, want ErrOpen", err)
		}
		if calls != 0 {
			t.Fatalf("fn called %d times while open", calls)
		}
		if got, want := b.RetryIn(), time.Millisecond; got != want {
			t.Errorf("RetryIn = %v, want %v", got, want)
		}
		time.Sleep(time.Millisecond)
		if got, want := b.State(), StateHalfOpen; got != want {
			t.Fatalf("at 60s state = %s, want %s", got, want)
		}
		if got := b.RetryIn(); got != 0 {
			t.Errorf("RetryIn in half-open = %v, want 0", got)
		}
	})
}

func TestBreakerHalfOpenOneProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := newTestBreaker(t)
		for range 3 {
			_ = b.Execute(fail)
		}
		time.Sleep(60 * time.Second)
		done, err := b.Allow()
		if err != nil {
			t.Fatalf("probe refused: %v", err)
		}
		for i := range 5 {
			if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
				t.Fatalf("second caller %d while probing: err = %v, want ErrOpen", i, err)
			}
		}
		done(true)
		if got, want := b.State(), StateClosed; got != want {
			t.Fatalf("after probe success state = %s, want %s", got, want)
		}
		if got := b.Failures(); got != 0 {
			t.Errorf("failures = %d, want 0", got)
		}
	})
}

func TestBreakerProbeFailureReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, ts := newTestBreaker(t)
		for range 3 {
			_ = b.Execute(fail)
		}
		time.Sleep(60 * time.Second)
		if err := b.Execute(fail); !errors.Is(err, errFail) {
			t.Fatalf("probe err = %v", err)
		}
		if got, want := b.State(), StateOpen; got != want {
			t.Fatalf("after probe failure state = %s, want %s", got, want)
		}
		if got, want := b.RetryIn(), 60*time.Second; got != want {
			t.Errorf("RetryIn = %v, want a fresh %v", got, want)
		}
		var path []string
		for _, tr := range *ts {
			path = append(path, tr.From.String()+">"+tr.To.String())
		}
		want := []string{"CLOSED>OPEN", "OPEN>HALF_OPEN", "HALF_OPEN>OPEN"}
		if len(path) != len(want) {
			t.Fatalf("transitions = %v, want %v", path, want)
		}
		for i := range want {
			if path[i] != want[i] {
				t.Fatalf("transitions = %v, want %v", path, want)
			}
		}
	})
}

func TestBreakerBypass(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := newTestBreaker(t)
		for range 3 {
			_ = b.Execute(fail)
		}
		if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
			t.Fatal("breaker should block normal calls")
		}
		// A manual refresh goes through while open and its failure keeps it
		// open with a fresh cooldown.
		done := b.Bypass()
		done(false)
		if got, want := b.State(), StateOpen; got != want {
			t.Fatalf("after failed bypass state = %s, want %s", got, want)
		}
		done = b.Bypass()
		done(true)
		if got, want := b.State(), StateClosed; got != want {
			t.Fatalf("after successful bypass state = %s, want %s", got, want)
		}
	})
}

func TestBreakerDoneIsIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := newTestBreaker(t)
		done, _ := b.Allow()
		done(false)
		done(false)
		done(false)
		if got, want := b.Failures(), 1; got != want {
			t.Errorf("failures = %d, want %d", got, want)
		}
	})
}

func TestBreakerConcurrentHalfOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := newTestBreaker(t)
		for range 3 {
			_ = b.Execute(fail)
		}
		time.Sleep(time.Minute)
		var allowed atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, err := b.Allow(); err == nil {
					allowed.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if got, want := allowed.Load(), int32(1); got != want {
			t.Errorf("%d probes allowed in half-open, want %d", got, want)
		}
	})
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StateClosed: "CLOSED", StateOpen: "OPEN", StateHalfOpen: "HALF_OPEN", State(9): "State(9)"} {
		if got := s.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

func TestBreakerCustomConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreaker(BreakerConfig{Threshold: 1, Cooldown: 5 * time.Second})
		_ = b.Execute(fail)
		if got, want := b.State(), StateOpen; got != want {
			t.Fatalf("state = %s, want %s", got, want)
		}
		time.Sleep(5 * time.Second)
		if got, want := b.State(), StateHalfOpen; got != want {
			t.Fatalf("state = %s, want %s", got, want)
		}
	})
}

// TestBreakerReportsTransitionsInOrder: one goroutine moves the breaker to
// HALF_OPEN and is still inside OnTransition when another's failed probe
// moves it back to OPEN. The second report waits for the first, so a log
// never reads HALF_OPEN->OPEN before OPEN->HALF_OPEN.
func TestBreakerReportsTransitionsInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var path []string
		inside, release := make(chan struct{}), make(chan struct{})
		b := NewBreaker(BreakerConfig{Name: "test", OnTransition: func(tr Transition) {
			if tr.To == StateHalfOpen {
				close(inside)
				<-release
			}
			mu.Lock()
			path = append(path, tr.From.String()+">"+tr.To.String())
			mu.Unlock()
		}})
		for range 3 {
			_ = b.Execute(fail)
		}
		time.Sleep(60 * time.Second)
		reader := make(chan struct{})
		go func() { b.State(); close(reader) }()
		<-inside
		// The probe is let through and fails while the report of
		// OPEN->HALF_OPEN is still being delivered.
		if err := b.Execute(fail); !errors.Is(err, errFail) {
			t.Fatalf("probe err = %v", err)
		}
		close(release)
		<-reader
		want := []string{"CLOSED>OPEN", "OPEN>HALF_OPEN", "HALF_OPEN>OPEN"}
		mu.Lock()
		defer mu.Unlock()
		if len(path) != len(want) || path[0] != want[0] || path[1] != want[1] || path[2] != want[2] {
			t.Errorf("transitions = %v, want %v", path, want)
		}
	})
}

// TestBreakerCallbackMayMoveIt: a callback that moves the breaker itself
// neither deadlocks nor loses or reorders a transition.
func TestBreakerCallbackMayMoveIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var path []string
		var b *Breaker
		b = NewBreaker(BreakerConfig{Name: "test", OnTransition: func(tr Transition) {
			path = append(path, tr.From.String()+">"+tr.To.String())
			if tr.To == StateOpen && len(path) == 1 {
				b.Bypass()(true) // closes it from inside the report of opening
			}
		}})
		for range 3 {
			_ = b.Execute(fail)
		}
		if got, want := b.State(), StateClosed; got != want {
			t.Errorf("state = %s, want %s", got, want)
		}
		if want := []string{"CLOSED>OPEN", "OPEN>CLOSED"}; len(path) != 2 || path[0] != want[0] || path[1] != want[1] {
			t.Errorf("transitions = %v, want %v", path, want)
		}
	})
}
