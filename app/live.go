package app

import (
	"context"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/claude-usage/widget/app/client"
	"github.com/claude-usage/widget/shared"
)

// Reconnect pacing of the live stream: after a stream that worked, the
// server's retry hint (at least StreamMinDelay); after a failed connect,
// twice the previous wait, at most StreamMaxDelay. Polling (the refresh)
// carries the data in between.
const (
	StreamMinDelay = time.Second
	StreamMaxDelay = 5 * time.Minute
	streamFirstGap = shared.StreamRetryMillis * time.Millisecond
)

// liveState is the widget's stream: at most one connection, started from
// the UI goroutine only while the page is visible and the last fetch was
// good; a failed connect counts in the breaker like a failed fetch.
type liveState struct {
	running bool // a connection (or its attempt) is under way
	open    bool // it delivered its first event: polling rests
	gen     int
	cancel  context.CancelFunc
	next    time.Time     // no new attempt before
	delay   time.Duration // the last wait after a failed connect
	off     bool          // the server has no stream for us (404, 405, 401)
	// needPoll: after a stream ends, the next connect waits for a good
	// poll too. So a server that is down is seen by the polls (and their
	// texts), and while the polls succeed a refused stream never adds
	// more than one failure to the breaker in a row.
	needPoll bool
}

// maybeStream starts the stream when everything allows it.
func (w *Widget) maybeStream() {
	l := &w.live
	if !w.started || w.stopTimers == nil || l.running || l.off || l.needPoll || w.status != stOK || w.fromCache ||
		w.now.Before(l.next) || w.deps.Fetcher.Breaker().State() != shared.StateClosed {
		return
	}
	ctx := w.ctx
	l.gen++
	gen := l.gen
	sctx, cancel := context.WithCancel(w.timersCtx)
	l.running, l.cancel = true, cancel
	req := client.StreamRequest{Account: w.account, Token: w.token}
	req.OnEvent = func(d *shared.UsageResponse) {
		ctx.Dispatch(func(ctx app.Context) {
			if w.live.gen != gen {
				return
			}
			w.live.open = true
			w.now = time.Now()
			w.applyData(d)
			w.log().Info("live update", "account", d.Account, "scrapedAt", d.ScrapedAt.UTC().Format(time.RFC3339))
		})
	}
	f := w.deps.Fetcher
	// A plain goroutine, not ctx.Async: go-app's test engine waits for
	// every Async to return before it renders, and a stream lives long.
	go func() {
		end := f.Stream(sctx, req)
		ctx.Dispatch(func(ctx app.Context) {
			cancel()
			if w.live.gen == gen {
				w.streamEnded(ctx, end)
			}
		})
	}()
}

// streamEnded paces the next attempt and, when the stream had been
// carrying the data, falls back to polling at once.
func (w *Widget) streamEnded(ctx app.Context, end client.StreamEnd) {
	l := &w.live
	wasOpen := l.open
	l.running, l.open, l.cancel = false, false, nil
	l.needPoll = true
	w.now = time.Now()
	switch {
	case end.Unsupported:
		l.off = true
		w.log().Warn("live updates off: the server has no stream for this token", "status", end.Status)
	case end.Opened:
		l.delay = 0
		l.next = w.now.Add(max(end.Retry, StreamMinDelay))
	default:
		if l.delay == 0 {
			l.delay = max(end.Retry, streamFirstGap)
		} else {
			l.delay = min(2*l.delay, StreamMaxDelay)
		}
		l.next = w.now.Add(l.delay)
		w.log().Warn("stream connect failed", "category", string(end.Category), "retryInMs", l.delay.Milliseconds(),
			"breakerOpen", end.BreakerOpen)
	}
	if wasOpen {
		w.fetch(ctx, false)
	}
}

// stopStream ends the stream (page hidden, dismount); its end is ignored.
func (w *Widget) stopStream() {
	l := &w.live
	if l.cancel != nil {
		l.cancel()
	}
	l.gen++
	l.running, l.open, l.cancel = false, false, nil
}

// resetStream ends the stream for a new account or token, which may have
// a stream where the old one had none.
func (w *Widget) resetStream() {
	w.stopStream()
	w.live.off, w.live.delay, w.live.next, w.live.needPoll = false, 0, time.Time{}, false
}
