package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/claude-usage/widget/shared"
)

// DefaultStreamIdle ends a stream that sent nothing, not even its ping,
// for more than two ping intervals: a proxy that holds the bytes back, or
// a connection that died without a reset.
const DefaultStreamIdle = 2*shared.StreamPing + 10*time.Second

// AcceptEventStream is the stream request's Accept header; the WASM doer
// hands such a response over as it arrives instead of reading it whole.
const AcceptEventStream = "text/event-stream"

// StreamRequest is one connection to GET …/stream.
type StreamRequest struct {
	Account string
	Token   string // sent instead of Config.Token's when set
	// OnEvent gets every usage event, the first one (sent at connect)
	// included. It runs on the stream's goroutine and must not block.
	OnEvent func(*shared.UsageResponse)
	// Idle overrides DefaultStreamIdle.
	Idle time.Duration
}

// StreamEnd says how a stream ended.
type StreamEnd struct {
	Err      error
	Category shared.Category
	Status   int  // the HTTP status when the connect was refused
	Events   int  // usage events received
	Opened   bool // the connect succeeded (200 and a first event)
	// Unsupported: the server answered 404 NOT_FOUND or 405 (a server
	// without the stream) or refused the token; retrying soon cannot help.
	Unsupported bool
	// Retry is the server's `retry:` hint, 0 without one.
	Retry time.Duration
	// BreakerOpen: nothing was sent, the breaker is open.
	BreakerOpen bool
}

// ErrStreamEnded is a stream that the server closed.
var ErrStreamEnded = errors.New("client: the stream ended")

// Stream connects to GET …/stream and reads it until it ends, ctx ends or
// it is idle too long. The breaker sees the connect like a fetch: a failed
// connect (no 200 with a first event) is a failure, the first event a
// success; the end of a stream that worked is no failure (the next connect
// decides). It never retries: the widget paces the reconnects.
func (c *Client) Stream(ctx context.Context, req StreamRequest) (end StreamEnd) {
	log := c.cfg.Logger
	probe := c.cfg.Breaker.State() == shared.StateHalfOpen
	done, err := c.cfg.Breaker.Allow()
	if err != nil {
		return StreamEnd{Err: err, BreakerOpen: true}
	}
	reported := false
	report := func(ok bool) {
		if !reported {
			reported = true
			done(ok)
		}
	}
	defer func() {
		switch {
		case reported:
		case ctx.Err() == nil:
			report(false) // ended before its first event: a failed connect
		case probe:
			report(false) // the widget went away, but a probe must report
		}
		if end.Category == "" && end.Err != nil {
			end.Category = shared.Classify(0, end.Err)
		}
		log.Info("stream ended", "events", end.Events, "category", string(end.Category), "error", errText(end.Err))
	}()

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := strings.TrimRight(c.cfg.BaseURL, "/") + shared.PathStream
	if req.Account != "" {
		u += "?account=" + url.QueryEscape(req.Account)
	}
	hreq, err := http.NewRequestWithContext(sctx, http.MethodGet, u, nil)
	if err != nil {
		return StreamEnd{Err: err, Category: shared.CategoryValidation}
	}
	hreq.Header.Set("Accept", AcceptEventStream)
	c.authorize(hreq, req.Token)
	// Only the connect has the attempt timeout; the stream then lives as
	// long as it sends something within Idle.
	connectTimer := time.AfterFunc(c.cfg.Timeout, cancel)
	resp, err := c.cfg.HTTP.Do(hreq)
	connectTimer.Stop()
	if err != nil {
		cat := shared.Classify(0, err)
		if errors.Is(err, ErrFetchFailed) {
			cat = shared.CategoryNetwork
		}
		return StreamEnd{Err: fmt.Errorf("client: GET %s: %w", shared.PathStream, err), Category: cat}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		ae := shared.ParseErrorResponse(resp)
		end := StreamEnd{Err: fmt.Errorf("client: stream: %w", ae), Category: ae.Category(), Status: resp.StatusCode}
		switch {
		case resp.StatusCode == http.StatusNotFound && ae.Body.ErrorCode != shared.CodeNoData,
			resp.StatusCode == http.StatusMethodNotAllowed, end.Category == shared.CategoryAuth:
			// An answer of a healthy server that has no stream for us.
			end.Unsupported = true
			report(true)
		case end.Category == shared.CategoryNotFound:
			report(true) // NO_DATA: the server is fine, there is nothing yet
		}
		return end
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, AcceptEventStream) {
		// A portal or proxy page: the server side is misbehaving.
		return StreamEnd{Err: fmt.Errorf("client: stream answered %q", ct), Category: shared.CategoryServer}
	}
	// A stalled stream ends by closing its body, which unblocks the read
	// on every doer.
	idle := req.Idle
	if idle <= 0 {
		idle = DefaultStreamIdle
	}
	idleTimer := time.AfterFunc(idle, func() { cancel(); resp.Body.Close() })
	defer idleTimer.Stop()
	stopClose := context.AfterFunc(sctx, func() { resp.Body.Close() })
	defer stopClose()

	var p SSEParser
	buf := make([]byte, 16<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			idleTimer.Reset(idle)
			evs, perr := p.Feed(buf[:n])
			end.Retry = p.Retry
			for _, ev := range evs {
				if ev.Event != shared.StreamEvent {
					continue
				}
				var data shared.UsageResponse
				if err := json.Unmarshal([]byte(ev.Data), &data); err != nil || len(data.Meters) == 0 {
					log.Warn("stream event skipped: not a usage body", "error", errText(err), "bytes", len(ev.Data))
					continue
				}
				end.Events++
				if !end.Opened {
					end.Opened = true
					report(true)
					log.Info("stream open", "account", data.Account)
				}
				if req.OnEvent != nil {
					req.OnEvent(&data)
				}
			}
			if perr != nil {
				end.Err, end.Category = perr, shared.CategoryServer
				return end
			}
		}
		if rerr != nil {
			switch {
			case ctx.Err() != nil:
				end.Err = ctx.Err()
			case sctx.Err() != nil:
				end.Err, end.Category = errors.New("client: the stream was idle too long"), shared.CategoryNetwork
			case errors.Is(rerr, io.EOF):
				end.Err, end.Category = ErrStreamEnded, shared.CategoryNetwork
			default:
				end.Err = rerr
			}
			return end
		}
	}
}

func (c *Client) authorize(hreq *http.Request, token string) {
	if token == "" {
		token = c.cfg.Token()
	}
	if token != "" {
		hreq.Header.Set("Authorization", "Bearer "+token)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
