package runner

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/upload"
	"github.com/claude-usage/widget/shared"
)

// maxDeferral caps a deferred snapshot's own backoff.
const maxDeferral = time.Hour

// deferral is a snapshot the server kept failing: it waits behind the
// others until its own backoff has passed.
type deferral struct {
	b     retry.Backoff
	until time.Time
}

// Drain sends pending snapshots, oldest first, until the outbox is empty,
// the server as a whole fails, or the drain budget is spent.
//
// A snapshot whose retries are spent on a SERVER (500) or UNKNOWN failure
// goes behind the others with its own backoff (one interval, doubling, at most
// an hour), and the rest are still sent: one snapshot the server chokes on
// must not keep newer data from the widget. A second failure in a row
// says the server, not the snapshot, is the trouble: the drain stops and
// that snapshot keeps its place. So does every failure that is about the
// server (unreachable, rate limiting, an answer not from a usage-server)
// or needs the user (AUTH, NOT_FOUND).
func (r *Runner) Drain(ctx context.Context) DrainResult {
	var res DrainResult
	items, err := r.cfg.Outbox.List()
	if err != nil {
		r.log.Error("outbox unreadable", "error", err.Error(), "held", len(items))
		if len(items) == 0 {
			res.Err = err
			return res
		}
	}
	order := r.order(items, &res)
	start := time.Now()
	var (
		prev        string // the snapshot deferred just before, "" if the last send went well
		prevCreated bool   // its deferral began with that failure
	)
	flushLogged := false
loop:
	for i, it := range order {
		if ctx.Err() != nil {
			break
		}
		if i > 0 && time.Since(start) >= r.cfg.DrainBudget {
			r.log.Info("drain budget spent; the rest waits for the next cycle", "budget", r.cfg.DrainBudget.String(), "sent", res.Sent)
			break
		}
		// Before every send: snapshots held in memory get another chance
		// at the disk, so that a crash after the disk has room loses none.
		if ferr := r.cfg.Outbox.Flush(); ferr != nil && !flushLogged {
			flushLogged = true
			r.log.Warn("outbox still cannot be written; held snapshots stay in memory", "held", r.cfg.Outbox.Held(), "error", ferr.Error())
		}
		snap, err := r.cfg.Outbox.Load(it.ID)
		switch {
		case errors.Is(err, outbox.ErrCorrupt):
			res.Corrupt++
			continue
		case errors.Is(err, outbox.ErrNotFound):
			continue // another process sent it meanwhile
		case err != nil:
			res.Err = err
			r.log.Error("outbox read failed", "id", it.ID, "error", err.Error())
			break loop
		}
		_, err = r.cfg.Client.Send(ctx, it.ID, snap)
		cat := upload.CategoryOf(err)
		switch {
		case err == nil:
			if rerr := r.cfg.Outbox.Remove(it.ID); rerr != nil {
				// Sent but still queued: the next drain replays it and the
				// Idempotency-Key makes that harmless.
				r.log.Error("sent snapshot not removed from the outbox", "id", it.ID, "error", rerr.Error())
			}
			delete(r.deferred, it.ID)
			res.Sent++
			prev = ""
			continue
		case cat == shared.CategoryValidation:
			// Only the server's own error body gets here (upload makes
			// every other 4xx a SERVER failure): its verdict is final.
			if rerr := r.cfg.Outbox.Reject(it.ID, err.Error()); rerr != nil {
				res.Err = rerr
				break loop
			}
			delete(r.deferred, it.ID)
			res.Rejected++
			prev = ""
			continue
		}
		res.Failed = err
		if ctx.Err() != nil {
			res.Err = err
			break
		}
		if cat.Retryable() && !serverWide(err) && prev == "" {
			d, created := r.deferSnapshot(it.ID)
			res.Deferred++
			prev, prevCreated = it.ID, created
			r.log.Warn("snapshot deferred: its retries are spent, the others go first", "id", it.ID, "category", string(cat),
				"retryInMs", d.Milliseconds(), "error", err.Error())
			continue
		}
		if prev != "" && cat.Retryable() && !serverWide(err) {
			// Two in a row: the server is failing, not the snapshot.
			r.undefer(prev, prevCreated)
			res.Deferred--
		}
		res.Err = err
		r.log.Warn("drain stopped", "category", string(cat), "id", it.ID, "error", err.Error(), "nextStep", nextStep(err))
		break
	}
	if n, err := r.cfg.Outbox.Len(); err == nil {
		res.Remaining = n
	}
	if res.Sent+res.Rejected+res.Deferred > 0 || res.Err != nil {
		r.log.Info("drain done", "sent", res.Sent, "rejected", res.Rejected, "corrupt", res.Corrupt, "deferred", res.Deferred,
			"remaining", res.Remaining)
	}
	return res
}

// order puts the snapshots never deferred first, oldest first, then the
// deferred ones whose backoff has passed; the others wait. It forgets
// deferrals of snapshots that left the outbox.
func (r *Runner) order(items []outbox.Item, res *DrainResult) []outbox.Item {
	now := time.Now()
	present := make(map[string]bool, len(items))
	var fresh, due []outbox.Item
	for _, it := range items {
		present[it.ID] = true
		d, ok := r.deferred[it.ID]
		switch {
		case !ok:
			fresh = append(fresh, it)
		case !now.Before(d.until):
			due = append(due, it)
		default:
			res.Deferred++
		}
	}
	for id := range r.deferred {
		if !present[id] {
			delete(r.deferred, id)
		}
	}
	return append(fresh, due...)
}

// deferSnapshot moves id behind the others for its next backoff step;
// created reports that it was not deferred before.
func (r *Runner) deferSnapshot(id string) (wait time.Duration, created bool) {
	d, ok := r.deferred[id]
	if !ok {
		d = &deferral{b: retry.WithCappedDuration(maxDeferral, retry.NewExponential(r.cfg.Interval))}
		r.deferred[id] = d
	}
	wait, _ = d.b.Next()
	d.until = time.Now().Add(wait)
	return wait, !ok
}

// undefer takes back the deferral just made: id gets its place back, or,
// deferred before, is due again at once.
func (r *Runner) undefer(id string, created bool) {
	if created {
		delete(r.deferred, id)
	} else if d, ok := r.deferred[id]; ok {
		d.until = time.Time{}
	}
}

// serverWide reports a failure that says nothing about the snapshot: the
// server unreachable, asking to slow down, not a usage-server at all, or
// answering that it is unavailable as a whole (502, 503 such as its store
// breaker, 504, 507 disk full). Trying the next snapshot would only add
// load; a 500 may be this snapshot's alone, so that one is deferred.
func serverWide(err error) bool {
	cat := upload.CategoryOf(err)
	if cat == shared.CategoryNetwork || cat == shared.CategoryRateLimited || errors.Is(err, upload.ErrNotUsageServer) {
		return true
	}
	var ue *upload.Error
	if errors.As(err, &ue) {
		switch ue.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusInsufficientStorage:
			return true
		}
	}
	return false
}

// nextStep is the advice logged when a drain stops.
func nextStep(err error) string {
	switch {
	case errors.Is(err, upload.ErrNotUsageServer):
		return "the server URL does not answer like a usage-server (a captive portal, a proxy or a wrong --server?): check --server; the snapshots stay in the outbox"
	case upload.CategoryOf(err) == shared.CategoryAuth:
		return "the server refused the key: check --api-key / --api-key-file against the server's key"
	case upload.CategoryOf(err) == shared.CategoryNotFound:
		return "check --server: it must be the usage-server's base URL"
	}
	return "the snapshots stay in the outbox and are sent on the next cycle"
}
