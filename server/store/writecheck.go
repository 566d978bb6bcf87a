package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/claude-usage/widget/shared"
)

const (
	// ProbeStuckAfter is the one stuck-probe rule: a write check that has
	// not answered for this long makes Status report the storage as not
	// writable, for health and metrics alike, while the check goes on.
	ProbeStuckAfter = time.Second
	// RecoveryEvery is how often a write check runs while the breaker is
	// open; a passing one closes the breaker, so that writes resume within
	// this time of the storage working again rather than after the whole
	// cooldown.
	RecoveryEvery = 5 * time.Second
)

// WriteCheckConfig is what a backend gives its WriteCheck.
type WriteCheckConfig struct {
	// Probe runs one write check; ctx ends when the store closes, and a
	// probe must honour it. Probe does the I/O; the function it returns
	// runs under the check's lock just before the result is published, so
	// that the figures the probe measured (free bytes, latency) are
	// recorded with it, and returns the check's error (nil: writable).
	Probe func(ctx context.Context) (publish func() *shared.Error)
	// Where is the directory or the database, for messages and Status.Dir;
	// LogKey is its name in log lines ("dir", "database"), and Subject the
	// recovery line's subject ("storage", "database").
	Where, LogKey, Subject string
	// Unanswered is the code of a check that did not answer in time.
	Unanswered shared.Code
	// RecoverEvery is the period of the checks while the breaker is open
	// (0: RecoveryEvery).
	RecoverEvery time.Duration
	Log          *slog.Logger
}

type probeCall struct {
	done chan struct{}
	err  error
}

// WriteCheck is a backend's canWriteToStorage and its store breaker:
// concurrent callers share one probe, a caller whose ctx ends stops waiting
// while the probe finishes in the background (a hung syscall or query
// cannot be interrupted), and while the breaker is open a check runs every
// RecoverEvery and a passing one closes it.
type WriteCheck struct {
	life    *Lifecycle
	cfg     WriteCheckConfig
	log     *slog.Logger
	breaker *shared.Breaker
	opened  chan struct{} // the breaker opened: start the recovery checks

	mu        sync.Mutex // guards the result below; see Lock
	writable  bool
	writeErr  error
	checkedAt time.Time
	call      *probeCall
	callStart time.Time
}

// NewWriteCheck returns the check of a backend living as long as life; no
// check runs until the first Check, and none in the background until
// StartRecovery.
func NewWriteCheck(life *Lifecycle, cfg WriteCheckConfig) *WriteCheck {
	if cfg.RecoverEvery <= 0 {
		cfg.RecoverEvery = RecoveryEvery
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	w := &WriteCheck{life: life, cfg: cfg, log: cfg.Log, opened: make(chan struct{}, 1)}
	w.breaker = shared.NewBreaker(shared.BreakerConfig{Name: "store", OnTransition: w.onTransition})
	return w
}

// Breaker is the store breaker; the recovery checks close it.
func (w *WriteCheck) Breaker() *shared.Breaker { return w.breaker }

// Lock takes the lock that guards the check's result. A backend guards with
// it the figures its Probe records, so that Status reads them together.
func (w *WriteCheck) Lock() { w.mu.Lock() }

// Unlock releases Lock.
func (w *WriteCheck) Unlock() { w.mu.Unlock() }

// Check implements Store.CheckWritable. Once Close has begun it fails at
// once: a probe started then would outlive the store.
func (w *WriteCheck) Check(ctx context.Context) error {
	var p *probeCall
	if err := w.life.whileOpen(func() { p = w.start() }); err != nil {
		return err
	}
	return w.wait(ctx, p)
}

// CheckEntered is Check for a call between Enter and Leave, or for
// background work: Close waits for those before it waits for checks, so
// the check may start even while Close is waiting.
func (w *WriteCheck) CheckEntered(ctx context.Context) error {
	return w.wait(ctx, w.start())
}

// start starts a probe or joins the one in flight.
func (w *WriteCheck) start() *probeCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.call == nil {
		p := &probeCall{done: make(chan struct{})}
		w.call, w.callStart = p, time.Now()
		w.life.Go(func() { w.run(p) })
	}
	return w.call
}

func (w *WriteCheck) wait(ctx context.Context, p *probeCall) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return &shared.Error{
			Code:    w.cfg.Unanswered,
			Message: fmt.Sprintf("storage: write check of %s did not answer in time", w.cfg.Where),
			Err:     ctx.Err(),
		}
	}
}

func (w *WriteCheck) run(p *probeCall) {
	publish := w.cfg.Probe(w.life.ctx)
	w.mu.Lock()
	was := w.writable || w.checkedAt.IsZero()
	serr := publish()
	if serr != nil {
		w.writable, w.writeErr, p.err = false, serr, serr
	} else {
		w.writable, w.writeErr = true, nil
	}
	w.checkedAt = time.Now()
	w.call = nil
	w.mu.Unlock()
	close(p.done)
	switch {
	case serr != nil && was:
		w.log.Error("storage not writable", w.cfg.LogKey, w.cfg.Where, "code", string(serr.Code), "error", serr.Message)
	case serr == nil && !was:
		w.log.Info("storage writable again", w.cfg.LogKey, w.cfg.Where)
	}
}

// Status is the check's part of Status: Dir, Writable, WriteErr, CheckedAt,
// Checking and Breaker. with, when not nil, runs under Lock to add the
// figures the probe records.
func (w *WriteCheck) Status(with func(*Status)) Status {
	w.mu.Lock()
	st := Status{Dir: w.cfg.Where, Writable: w.writable, WriteErr: w.writeErr, CheckedAt: w.checkedAt}
	if w.call != nil {
		st.Checking = true
		// A write check that hangs is itself the answer: the storage is not
		// usable right now, whatever the last finished check said.
		if d := time.Since(w.callStart); d > ProbeStuckAfter {
			st.Writable = false
			st.WriteErr = shared.Errorf(w.cfg.Unanswered,
				"storage: write check of %s has not answered for %s", w.cfg.Where, d.Truncate(time.Second))
		}
	}
	if with != nil {
		with(&st)
	}
	w.mu.Unlock()
	st.Breaker = w.breaker.State()
	return st
}

func (w *WriteCheck) onTransition(t shared.Transition) {
	w.log.Warn("store breaker transition", "from", t.From.String(), "to", t.To.String(),
		"failures", t.Failures, "at", t.At.UTC())
	if t.To == shared.StateOpen {
		select {
		case w.opened <- struct{}{}:
		default:
		}
	}
}

// StartRecovery starts, as background work of the Lifecycle, the checks
// that run while the breaker is open.
func (w *WriteCheck) StartRecovery() { w.life.Go(w.recoveryLoop) }

func (w *WriteCheck) recoveryLoop() {
	for {
		select {
		case <-w.life.ctx.Done():
			return
		case <-w.opened:
		}
		if !w.recover() {
			return
		}
	}
}

// recover ticks until the breaker is closed; false when the store closes.
// Each check is bounded by the period, so a hung storage never stacks
// checks (they share one probe anyway).
func (w *WriteCheck) recover() bool {
	t := time.NewTicker(w.cfg.RecoverEvery)
	defer t.Stop()
	for w.breaker.State() != shared.StateClosed {
		select {
		case <-w.life.ctx.Done():
			return false
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(w.life.ctx, w.cfg.RecoverEvery)
		err := w.CheckEntered(ctx)
		cancel()
		if err == nil && w.breaker.State() != shared.StateClosed {
			w.log.Info(w.cfg.Subject+" write check passed while the breaker was open; closing it", w.cfg.LogKey, w.cfg.Where)
			w.breaker.Bypass()(true)
		}
	}
	return true
}
