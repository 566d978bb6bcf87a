//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/claude-usage/widget/shared"
)

// The streams section: 100 open event streams (GET …/stream) on the real
// server, the most --max-streams allows by default. It reads the server's
// memory with none and with all open, and times each POST's fan-out: from
// just before the POST is sent to the last of the streams having read the
// event carrying the new version. Both ends are this process's monotonic
// clock (the streams' readers run here too). The issue names no budget for
// either.

func init() { register("streams", 27, runStreams) }

const (
	streamCount   = 100
	streamPosts   = 20
	streamTimeout = 10 * time.Second // one event's wait, and the first event's
	streamSettle  = time.Second      // after opening or closing, before reading memory
)

func runStreams(ctx context.Context, env *Env) ([]Row, error) {
	srv, key, token, err := startSessionServer(ctx, env, "streams", "--max-streams", fmt.Sprint(streamCount))
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	// The server's POST and stream paths warmed up (one stream, a few
	// POSTs), then closed, so that "none open" is the same process after
	// the same code ran, not a fresh one.
	if err := streamWarmUp(ctx, srv, key, token); err != nil {
		return nil, err
	}
	time.Sleep(streamSettle)
	none, err := readProcMem(srv.pid())
	if err != nil {
		return nil, err
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readers, err := openStreams(sctx, srv, token, streamCount)
	defer readers.close()
	if err != nil {
		return nil, err
	}
	time.Sleep(streamSettle)
	open, err := readProcMem(srv.pid())
	if err != nil {
		return nil, err
	}
	env.Logf("streams: VmRSS %s with none open, %s with %d", memMB(none.RSSKB), memMB(open.RSSKB), streamCount)

	var fan, post []time.Duration
	for i := range streamPosts {
		t0 := time.Now()
		id, err := postSession(ctx, srv, key, float64(11+i))
		if err != nil {
			return nil, err
		}
		answered := time.Since(t0)
		last, err := readers.waitAll(ctx, id, streamTimeout)
		if err != nil {
			return nil, fmt.Errorf("bench: POST %d: %w", i+1, err)
		}
		fan = append(fan, last.Sub(t0))
		post = append(post, answered)
	}
	end, err := readProcMem(srv.pid())
	if err != nil {
		return nil, err
	}
	cancel()
	readers.close()

	perStream := float64(open.RSSKB-none.RSSKB) * 1024 / streamCount / 1e3
	return []Row{
		{
			Name:     fmt.Sprintf("server RSS, %d streams open", streamCount),
			Value:    memMB(open.RSSKB),
			Baseline: memMB(none.RSSKB) + " none open",
			Ratio:    ratio(float64(open.RSSKB), float64(none.RSSKB)),
			Note: fmt.Sprintf("VmRSS %s after opening them (%.0f kB a stream), %s after the %d POSTs below; peak VmHWM %s; same process, file store, 1 account; MB = 10^6 bytes; the issue names no budget",
				memMB(open.RSSKB), perStream, memMB(end.RSSKB), streamPosts, memMB(end.HWMKB)),
		},
		{
			Name:  fmt.Sprintf("fan-out per POST to %d streams (median of %d)", streamCount, streamPosts),
			Value: httpMS(median(fan)),
			Note: fmt.Sprintf("max %s; from just before the POST to the last stream having read the event with the new version, all in this process's clock; "+
				"the POST itself answered in median %s, max %s; the issue names no budget",
				httpMS(slices.Max(fan)), httpMS(median(post)), httpMS(slices.Max(post))),
		},
	}, nil
}

// streamWarmUp opens one stream, sees two POSTs arrive on it and closes it.
func streamWarmUp(ctx context.Context, srv *benchProc, key, token string) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, err := openStreams(wctx, srv, token, 1)
	defer r.close()
	if err != nil {
		return err
	}
	for i := range 2 {
		id, err := postSession(ctx, srv, key, float64(5+i))
		if err != nil {
			return err
		}
		if _, err := r.waitAll(ctx, id, streamTimeout); err != nil {
			return fmt.Errorf("bench: warm-up: %w", err)
		}
	}
	return nil
}

// streamReaders are open streams, each read by its own goroutine.
type streamReaders struct {
	tr     *http.Transport
	events []chan streamEvent
	wg     sync.WaitGroup
	once   sync.Once
	cancel context.CancelFunc
}

// streamEvent is one usage event as read: when, and its data line.
type streamEvent struct {
	at   time.Time
	data string
}

// openStreams opens n streams, each on its own connection, and returns
// once every one has read its first event.
func openStreams(ctx context.Context, srv *benchProc, token string, n int) (*streamReaders, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &streamReaders{cancel: cancel, tr: &http.Transport{
		Proxy: nil, DisableCompression: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp4", addr)
		},
	}}
	client := &http.Client{Transport: r.tr}
	first := make(chan error, n)
	for range n {
		ch := make(chan streamEvent, streamPosts+8)
		r.events = append(r.events, ch)
		r.wg.Go(func() { readStream(ctx, client, srv.url()+shared.PathStream, token, ch, first) })
	}
	timer := time.NewTimer(streamTimeout)
	defer timer.Stop()
	for i := range n {
		select {
		case err := <-first:
			if err != nil {
				return r, fmt.Errorf("bench: stream %d of %d: %w", i+1, n, err)
			}
		case <-timer.C:
			return r, fmt.Errorf("bench: only %d of %d streams had their first event after %s", i, n, streamTimeout)
		}
	}
	// The first events are the connect-time ones: drop them.
	for _, ch := range r.events {
		<-ch
	}
	return r, nil
}

// readStream reads one stream until ctx ends, sending every usage event's
// data to ch and reporting on first whether the stream opened.
func readStream(ctx context.Context, client *http.Client, url, token string, ch chan<- streamEvent, first chan<- error) {
	reported := false
	report := func(err error) {
		if !reported {
			reported = true
			first <- err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		report(err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		report(err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		report(fmt.Errorf("status %s", resp.Status))
		return
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == shared.StreamEvent:
			at := time.Now()
			select {
			case ch <- streamEvent{at, strings.TrimPrefix(line, "data: ")}:
			default: // the waiter reads every event; a full channel is a stuck run, which waitAll reports
			}
			report(nil)
		case line == "":
			event = ""
		}
	}
	report(fmt.Errorf("stream ended before its first event: %v", sc.Err()))
}

// waitAll waits until every stream has read an event whose data names the
// version id and returns when the last did.
func (r *streamReaders) waitAll(ctx context.Context, id string, timeout time.Duration) (time.Time, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var last time.Time
	for i, ch := range r.events {
		for {
			var ev streamEvent
			select {
			case ev = <-ch:
			case <-timer.C:
				return last, fmt.Errorf("stream %d of %d had no event with version %s after %s", i+1, len(r.events), id, timeout)
			case <-ctx.Done():
				return last, ctx.Err()
			}
			if strings.Contains(ev.data, `"`+id+`"`) {
				last = later(last, ev.at)
				break
			}
		}
	}
	return last, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// close ends every stream and waits for its reader.
func (r *streamReaders) close() {
	r.once.Do(func() {
		r.cancel()
		r.wg.Wait()
		r.tr.CloseIdleConnections()
	})
}
