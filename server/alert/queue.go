package alert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/claude-usage/widget/server/store"
)

// Delivery rules: 1 attempt + 3 retries at 2, 4, 8 s per round (a 429's
// Retry-After when longer, up to MaxRetryAfter); a round that fails puts
// the delivery back in its queue for a later round, up to MaxRounds and
// MaxAge, then it is dropped with an error log.
const (
	Retries         = 3
	RetryBase       = 2 * time.Second
	MaxRetryAfter   = 5 * time.Minute
	RoundDelay      = time.Minute // after the first failed round, doubling
	MaxRoundDelay   = 10 * time.Minute
	MaxRounds       = 10
	MaxAge          = 24 * time.Hour
	DefaultQueueMax = 1000
	idleWait        = time.Hour // a queue with nothing due looks again after this
)

// Channel delivers alerts somewhere.
type Channel interface {
	// Name is the channel's metric label and queue name.
	Name() string
	// Targets lists where a goes, one queued delivery each ("" for a
	// channel with a single receiver). None: the channel skips a.
	Targets(ctx context.Context, a Alert) ([]string, error)
	// Send makes one attempt. Errors other than *SendError are treated as
	// transient (network).
	Send(ctx context.Context, target string, a Alert) error
}

// SendError is a failed attempt with what the receiver said.
type SendError struct {
	Status     int
	RetryAfter time.Duration // from a 429 or 503
	Permanent  bool          // never retried (a 4xx other than 429)
	Gone       bool          // the target no longer exists: dropped, not failed
	Err        error
}

func (e *SendError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("status %d: %v", e.Status, e.Err)
	}
	return e.Err.Error()
}

func (e *SendError) Unwrap() error { return e.Err }

// Dispatcher owns one durable queue per channel and its worker.
type Dispatcher struct {
	st       store.AlertStore
	channels map[string]Channel
	order    []string
	kicks    map[string]chan struct{}
	max      int
	log      *slog.Logger
	metrics  *Metrics
	now      func() time.Time
	wg       sync.WaitGroup
}

// NewDispatcher queues in st; queueMax ≤ 0 takes DefaultQueueMax.
func NewDispatcher(st store.AlertStore, queueMax int, logger *slog.Logger, m *Metrics, now func() time.Time, channels ...Channel) *Dispatcher {
	if queueMax <= 0 {
		queueMax = DefaultQueueMax
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	d := &Dispatcher{st: st, channels: map[string]Channel{}, kicks: map[string]chan struct{}{},
		max: queueMax, log: logger.With("component", "alert"), metrics: m, now: now}
	for _, c := range channels {
		d.channels[c.Name()] = c
		d.order = append(d.order, c.Name())
		d.kicks[c.Name()] = make(chan struct{}, 1)
	}
	return d
}

func deliveryKey(id, target string) string {
	if target == "" {
		return id
	}
	sum := sha256.Sum256([]byte(target))
	return id + "|" + hex.EncodeToString(sum[:8])
}

// Enqueue implements Sink: a goes into every channel's queue, once per
// target.
func (d *Dispatcher) Enqueue(ctx context.Context, a Alert) error {
	var errs []error
	for _, name := range d.order {
		targets, err := d.channels[name].Targets(ctx, a)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		for _, t := range targets {
			if err := d.EnqueueTo(ctx, name, t, a); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// EnqueueTo queues a for one target of one channel.
func (d *Dispatcher) EnqueueTo(ctx context.Context, channel, target string, a Alert) error {
	if _, ok := d.channels[channel]; !ok {
		return fmt.Errorf("alert: no channel %q", channel)
	}
	payload, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("alert: encoding %s: %w", a.ID, err)
	}
	now := d.now().UTC()
	dropped, err := d.st.EnqueueDelivery(ctx, store.Delivery{Key: deliveryKey(a.ID, target), Channel: channel,
		Target: target, Payload: payload, EnqueuedAt: now, NextAt: now}, d.max)
	if err != nil {
		return fmt.Errorf("%s: %w", channel, err)
	}
	for _, x := range dropped {
		d.metrics.delivery(channel, ResultDropped)
		d.log.Error("alert delivery dropped: the queue is full", "channel", channel, "key", x.Key, "queueMax", d.max)
	}
	select {
	case d.kicks[channel] <- struct{}{}:
	default:
	}
	return nil
}

// Run works every queue until ctx ends; deliveries in flight stop with ctx
// and stay queued for the next start.
func (d *Dispatcher) Run(ctx context.Context) {
	for _, name := range d.order {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.work(ctx, name)
		}()
	}
	d.wg.Wait()
}

func (d *Dispatcher) work(ctx context.Context, channel string) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kicks[channel]:
		case <-timer.C:
		}
		next := d.Drain(ctx, channel)
		wait := idleWait
		if !next.IsZero() {
			wait = max(next.Sub(d.now()), 0)
		}
		timer.Stop()
		timer.Reset(wait)
	}
}

// Drain delivers every due delivery of the channel's queue, oldest first,
// and returns when the next one is due (zero: none waits). Once one gets
// through, the receiver is back: the ones waiting for a later round go at
// once (a second pass), oldest first.
func (d *Dispatcher) Drain(ctx context.Context, channel string) time.Time {
	var next time.Time
	recovered := false
	for pass := 0; pass < 2; pass++ {
		q, err := d.st.Deliveries(ctx, channel)
		if err != nil {
			d.log.Error("could not read the alert queue", "channel", channel, "error", err.Error())
			return d.now().Add(RoundDelay)
		}
		next = time.Time{}
		waiting := false
		for _, dl := range q {
			if ctx.Err() != nil {
				return time.Time{}
			}
			if dl.NextAt.After(d.now()) && !recovered {
				waiting = true
				if next.IsZero() || dl.NextAt.Before(next) {
					next = dl.NextAt
				}
				continue
			}
			at, sent := d.deliver(ctx, dl)
			recovered = recovered || sent
			if !at.IsZero() && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
		if !recovered || !waiting {
			break
		}
	}
	if q, err := d.st.Deliveries(ctx, channel); err == nil {
		d.metrics.queueLength(channel, len(q))
	}
	return next
}

// deliver runs one round for dl; it returns when dl is due again (zero:
// it left the queue) and whether it was sent.
func (d *Dispatcher) deliver(ctx context.Context, dl store.Delivery) (time.Time, bool) {
	ch := d.channels[dl.Channel]
	log := d.log.With("channel", dl.Channel, "key", dl.Key)
	var a Alert
	if err := json.Unmarshal(dl.Payload, &a); err != nil {
		d.remove(ctx, dl)
		d.metrics.delivery(dl.Channel, ResultDropped)
		log.Error("alert delivery dropped: its payload does not parse", "error", err.Error())
		return time.Time{}, false
	}
	log = log.With("id", a.ID, "kind", a.Kind)
	start := d.now()
	attempts, err := d.attempt(ctx, ch, dl.Target, a, log)
	var se *SendError
	switch {
	case err == nil:
		d.remove(ctx, dl)
		d.metrics.delivery(dl.Channel, ResultSent)
		log.Info("alert delivered", "attempt", attempts, "durationMs", d.now().Sub(start).Milliseconds())
		return time.Time{}, true
	case ctx.Err() != nil:
		return time.Time{}, false // stopping: it stays queued for the next start
	case errors.As(err, &se) && se.Gone:
		d.remove(ctx, dl)
		d.metrics.delivery(dl.Channel, ResultDropped)
		log.Warn("alert delivery dropped: the target is gone", "error", err.Error())
		return time.Time{}, false
	case errors.As(err, &se) && se.Permanent:
		d.remove(ctx, dl)
		d.metrics.delivery(dl.Channel, ResultFailed)
		log.Error("alert delivery refused; not retried", "attempt", attempts, "error", err.Error())
		return time.Time{}, false
	}
	d.metrics.delivery(dl.Channel, ResultFailed)
	dl.Attempts++
	if dl.Attempts >= MaxRounds || d.now().Sub(dl.EnqueuedAt) >= MaxAge {
		d.remove(ctx, dl)
		d.metrics.delivery(dl.Channel, ResultDropped)
		log.Error("alert delivery dropped after its last round", "rounds", dl.Attempts, "error", err.Error())
		return time.Time{}, false
	}
	delay := min(RoundDelay<<(dl.Attempts-1), MaxRoundDelay)
	if errors.As(err, &se) && se.RetryAfter > delay {
		delay = se.RetryAfter
	}
	dl.NextAt = d.now().Add(delay).UTC()
	if uerr := d.st.UpdateDelivery(ctx, dl); uerr != nil {
		log.Error("could not reschedule an alert delivery", "error", uerr.Error())
	}
	log.Warn("alert delivery failed; queued for a later round", "round", dl.Attempts, "delayMs", delay.Milliseconds(), "error", err.Error())
	return dl.NextAt, false
}

func (d *Dispatcher) remove(ctx context.Context, dl store.Delivery) {
	if err := d.st.RemoveDelivery(context.WithoutCancel(ctx), dl.Channel, dl.Key); err != nil {
		d.log.Error("could not remove a finished alert delivery from its queue", "channel", dl.Channel, "key", dl.Key, "error", err.Error())
	}
}

// attempt is one round: 1 attempt + Retries retries with go-retry, a 429's
// Retry-After honoured when longer than the backoff and not beyond
// MaxRetryAfter (beyond it the round ends and the queue waits instead).
func (d *Dispatcher) attempt(ctx context.Context, ch Channel, target string, a Alert, log *slog.Logger) (int, error) {
	base := retry.WithMaxRetries(Retries, retry.NewExponential(RetryBase))
	var retryAfter time.Duration
	n := 0
	b := retry.BackoffFunc(func() (time.Duration, bool) {
		w, stop := base.Next()
		if stop || retryAfter > MaxRetryAfter {
			return 0, true
		}
		return max(w, retryAfter), false
	})
	err := retry.Do(ctx, b, func(ctx context.Context) error {
		n++
		retryAfter = 0
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := ch.Send(actx, target, a)
		if err == nil {
			return nil
		}
		var se *SendError
		if errors.As(err, &se) {
			if se.Permanent || se.Gone {
				return err
			}
			retryAfter = se.RetryAfter
		}
		log.Warn("alert delivery attempt failed", "attempt", n, "error", err.Error())
		return retry.RetryableError(err)
	})
	return n, err
}
