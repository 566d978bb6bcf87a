package shared

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// State is a circuit breaker state.
type State int

const (
	StateClosed State = iota
	StateOpen
	StateHalfOpen
)

func (s State) String() string {
	switch s {
	case StateClosed:
		return "CLOSED"
	case StateOpen:
		return "OPEN"
	case StateHalfOpen:
		return "HALF_OPEN"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// ErrOpen is returned by Allow while the breaker blocks calls; in HALF_OPEN it
// is returned to every caller but the one probe.
var ErrOpen = errors.New("breaker: open")

// Transition describes one state change, for logs and metrics.
type Transition struct {
	Name     string
	From, To State
	Failures int
	At       time.Time
}

// BreakerConfig configures a Breaker. Zero values take the defaults.
type BreakerConfig struct {
	Name      string
	Threshold int           // consecutive failures that open it (3)
	Cooldown  time.Duration // how long OPEN blocks (60 s)
	// Now is the clock (time.Now). Tests fake time with testing/synctest;
	// it remains for callers whose tests still inject their own clock.
	Now          func() time.Time
	OnTransition func(Transition) // called without the lock held
}

// Breaker is a circuit breaker: CLOSED counts consecutive failures and opens
// at Threshold; OPEN blocks for Cooldown; HALF_OPEN lets exactly one probe
// through, whose success closes and whose failure reopens it. It is safe for
// concurrent use.
type Breaker struct {
	cfg BreakerConfig

	mu       sync.Mutex
	state    State
	failures int
	openedAt time.Time
	probing  bool
	// pending are transitions not yet given to OnTransition, in the order
	// they happened; emitting is set while one goroutine delivers them.
	pending  []Transition
	emitting bool
}

// Defaults: open after 3 consecutive failures, for 60 s.
const (
	DefaultBreakerThreshold = 3
	DefaultBreakerCooldown  = 60 * time.Second
)

// NewBreaker returns a closed breaker.
func NewBreaker(cfg BreakerConfig) *Breaker {
	if cfg.Threshold <= 0 {
		cfg.Threshold = DefaultBreakerThreshold
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = DefaultBreakerCooldown
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Breaker{cfg: cfg}
}

// State returns the current state; an OPEN breaker whose cooldown has passed
// reads as HALF_OPEN.
func (b *Breaker) State() State {
	b.mu.Lock()
	t := b.advance()
	s := b.state
	b.mu.Unlock()
	b.emit(t)
	return s
}

// Failures is the current count of consecutive failures.
func (b *Breaker) Failures() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures
}

// RetryIn is how long until an OPEN breaker lets a probe through; 0 when it
// is not open.
func (b *Breaker) RetryIn() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != StateOpen {
		return 0
	}
	d := b.openedAt.Add(b.cfg.Cooldown).Sub(b.cfg.Now())
	if d < 0 {
		return 0
	}
	return d
}

// Allow asks to make a call. It returns a done function that must be called
// with the call's outcome, or ErrOpen when the breaker blocks the call.
func (b *Breaker) Allow() (done func(success bool), err error) {
	b.mu.Lock()
	t := b.advance()
	switch b.state {
	case StateOpen:
		b.mu.Unlock()
		b.emit(t)
		return nil, ErrOpen
	case StateHalfOpen:
		if b.probing {
			b.mu.Unlock()
			b.emit(t)
			return nil, ErrOpen
		}
		b.probing = true
		b.mu.Unlock()
		b.emit(t)
		return b.doneFunc(true), nil
	}
	b.mu.Unlock()
	b.emit(t)
	return b.doneFunc(false), nil
}

// Bypass lets a manual attempt through whatever the state; its outcome
// updates the breaker like a probe's would.
func (b *Breaker) Bypass() (done func(success bool)) {
	b.mu.Lock()
	t := b.advance()
	b.mu.Unlock()
	b.emit(t)
	return b.doneFunc(true)
}

// Execute runs fn if the breaker allows it and records its outcome.
func (b *Breaker) Execute(fn func() error) error {
	done, err := b.Allow()
	if err != nil {
		return err
	}
	err = fn()
	done(err == nil)
	return err
}

func (b *Breaker) doneFunc(probe bool) func(bool) {
	var once sync.Once
	return func(success bool) {
		once.Do(func() { b.record(success, probe) })
	}
}

func (b *Breaker) record(success, probe bool) {
	b.mu.Lock()
	var t *Transition
	if probe {
		b.probing = false
	}
	if success {
		b.failures = 0
		if b.state != StateClosed {
			t = b.setState(StateClosed)
		}
	} else {
		b.failures++
		switch {
		case b.state == StateHalfOpen, b.state == StateOpen && probe:
			t = b.setState(StateOpen)
		case b.state == StateClosed && b.failures >= b.cfg.Threshold:
			t = b.setState(StateOpen)
		case b.state == StateOpen:
			// A call allowed before the breaker opened failed late: the
			// cooldown already runs, do not extend it.
		}
	}
	b.mu.Unlock()
	b.emit(t)
}

// advance moves OPEN to HALF_OPEN once the cooldown has passed. Called with
// the lock held; the returned transition must be emitted after unlocking.
func (b *Breaker) advance() *Transition {
	if b.state == StateOpen && !b.cfg.Now().Before(b.openedAt.Add(b.cfg.Cooldown)) {
		return b.setState(StateHalfOpen)
	}
	return nil
}

func (b *Breaker) setState(to State) *Transition {
	now := b.cfg.Now()
	t := &Transition{Name: b.cfg.Name, From: b.state, To: to, Failures: b.failures, At: now}
	if b.cfg.OnTransition != nil {
		b.pending = append(b.pending, *t)
	}
	b.state = to
	if to == StateOpen {
		b.openedAt = now
	}
	if to != StateHalfOpen {
		b.probing = false
	}
	return t
}

// emit delivers the pending transitions, t's among them, outside the lock
// and in the order they happened. Two goroutines that each moved the
// breaker would otherwise race to report, and a log could say
// HALF_OPEN->OPEN before OPEN->HALF_OPEN. Whoever finds another goroutine
// delivering leaves its transition to that one, which loops until none is
// left; a callback that moves the breaker itself queues its transition
// the same way instead of deadlocking.
func (b *Breaker) emit(t *Transition) {
	if t == nil || b.cfg.OnTransition == nil {
		return
	}
	b.mu.Lock()
	if b.emitting {
		b.mu.Unlock()
		return
	}
	b.emitting = true
	for len(b.pending) > 0 {
		next := b.pending[0]
		b.pending = b.pending[1:]
		b.mu.Unlock()
		b.cfg.OnTransition(next)
		b.mu.Lock()
	}
	b.pending = nil
	b.emitting = false
	b.mu.Unlock()
}
