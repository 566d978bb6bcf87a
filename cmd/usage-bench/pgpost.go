//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rs/xid"

	"github.com/claude-usage/widget/bench/load"
	"github.com/claude-usage/widget/shared"
)

// pgPostRows measures POST through the file store, one PostgreSQL replica
// and two on one database: the latency at a fixed rate well above real use
// (the budget's row), and the throughput at saturation for reference. The
// fixed-rate rounds rotate over the sides like the GET rounds, so that a
// change in machine load hits all of them. Through two replicas the POSTs
// are one schedule sent to each replica in turn, as the round-robin
// balancer in front of them sends them; the percentiles are those of
// every POST, as the scrapers behind the balancer see them.
func pgPostRows(ctx context.Context, env *Env, key string, bare, file, pg1, pg2 []*benchProc) ([]Row, error) {
	// The bare fiber handler answers every POST with the bytes of a real
	// 201 and does nothing else: what a POST costs on this machine at this
	// rate before any of the server's work (loopback, scheduling, the
	// generator), in the same rounds.
	sides := []struct {
		name  string
		procs []*benchProc
	}{{"bare", bare}, {"file store", file}, {"PostgreSQL, 1 replica", pg1}, {"PostgreSQL, 2 replicas", pg2}}
	load0 := loadAverage()
	series := make([]load.Series, len(sides))
	for _, side := range sides {
		// Warm-up: connections, the server's first POSTs.
		var warm load.Series
		if err := pgPostRound(ctx, side.procs, &warm, key, time.Second); err != nil {
			return nil, err
		}
	}
	for round := range env.Rounds {
		for k := range sides {
			i := (k + round) % len(sides)
			if err := pgPostRound(ctx, sides[i].procs, &series[i], key, env.Duration); err != nil {
				return nil, err
			}
		}
	}
	load1 := loadAverage()
	bareR := pgPostSum(series[0].Result())
	var rows []Row
	for i, side := range sides {
		if i == 0 {
			continue
		}
		r := pgPostSum(series[i].Result())
		clean := r.errs == 0 && r.requests > 0
		spread := ""
		if len(side.procs) > 1 {
			spread = fmt.Sprintf(", sent to the %d replicas in turn", len(side.procs))
		}
		note := fmt.Sprintf("open loop: %d POSTs/s on a fixed schedule whatever the answers%s, each its own Idempotency-Key; "+
			"%d POSTs in %d×%s rounds rotated over the sides and bare; p50 %s p90 %s max %s (bare %s, %s, %s); sent at %.1f/s; load average %s before, %s after",
			pgPostRate, spread, r.requests, env.Rounds, env.Duration, httpMS(r.p50), httpMS(r.p90), httpMS(r.max),
			httpMS(bareR.p50), httpMS(bareR.p90), httpMS(bareR.max), r.sent, load0, load1)
		if !clean {
			note = fmt.Sprintf("INVALID: %d failed or not 201 (%s); ", r.errs, r.first) + note
		}
		if r.sent < 0.95*pgPostRate {
			note = "BEHIND: the schedule was not kept; " + note
		}
		if bareR.errs > 0 || bareR.requests == 0 {
			note = fmt.Sprintf("bare: %d failed (%s); ", bareR.errs, bareR.first) + note
		}
		rows = append(rows, Row{
			Name:     fmt.Sprintf("POST p99 at %d req/s (%s)", pgPostRate, side.name),
			Value:    httpMS(r.p99),
			Baseline: "bare " + httpMS(bareR.p99),
			Ratio:    ratio(float64(r.p99), float64(bareR.p99)),
			Budget:   fmt.Sprintf("<= %d ms", pgPostBudget.Milliseconds()),
			Met:      check(clean && r.sent >= 0.95*pgPostRate && r.p99 <= pgPostBudget),
			Note:     note,
		})
	}
	for _, side := range sides[1:] {
		d := env.Duration * time.Duration(env.Rounds)
		res, err := load.Run(ctx, pgPostOptions(side.procs, key, pgPostConns, d, 0))
		if err != nil {
			return rows, fmt.Errorf("bench: %w", err)
		}
		r := pgPostSum(res)
		note := fmt.Sprintf("closed loop at saturation: %d POSTs at a time for %s, each its own Idempotency-Key; "+
			"client, server and PostgreSQL share 2 cores, so the latency is mostly queueing: p50 %s p99 %s",
			pgPostConns, d, httpMS(r.p50), httpMS(r.p99))
		if r.errs > 0 || r.requests == 0 {
			note = fmt.Sprintf("INVALID: %d failed (%s); ", r.errs, r.first) + note
		}
		rows = append(rows, Row{
			Name:  "POST saturation throughput (" + side.name + ")",
			Value: fmt.Sprintf("%.0f req/s", res.RPS),
			Note:  note,
		})
	}
	return rows, nil
}

// pgPostRound POSTs new snapshots at pgPostRate for d, to procs in turn,
// adding to series.
func pgPostRound(ctx context.Context, procs []*benchProc, series *load.Series, key string, d time.Duration) error {
	if err := series.Run(ctx, pgPostOptions(procs, key, pgPostInFlight, d, pgPostRate)); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// pgPostOptions are a run of new snapshots POSTed to procs in turn.
func pgPostOptions(procs []*benchProc, key string, conns int, d time.Duration, rate int) load.Options {
	urls := make([]string, len(procs))
	for i, p := range procs {
		urls[i] = p.url() + shared.PathUsage
	}
	return load.Options{
		URLs: urls, Conns: conns, Duration: d, Rate: rate,
		Header: http.Header{"Content-Type": {"application/json"}, shared.HeaderAPIKey: {key}},
		Build:  pgPostRequest,
	}
}

// pgPostRequest is one new snapshot, scraped a second ago, with a key of
// its own.
func pgPostRequest(n uint64) load.Request {
	body, _ := json.Marshal(seedSnapshot(time.Now().UTC().Add(-time.Second), int(n)))
	return load.Request{Method: http.MethodPost, Body: body,
		Header: http.Header{shared.HeaderIdempotencyKey: {xid.New().String()}}}
}

type pgPostResult struct {
	requests, errs     int
	first              string
	p50, p90, p99, max time.Duration
	sent               float64 // POSTs sent per second
}

// pgPostSum reads a side's result: anything but a 201 is a failure.
func pgPostSum(r load.Result) pgPostResult {
	out := pgPostResult{requests: r.Requests, errs: r.Errors + r.Requests - r.StatusCounts[http.StatusCreated],
		first: r.FirstError, p50: r.P50, p90: r.P90, p99: r.P99, max: r.Max, sent: r.SentRate}
	if r.Requests != r.StatusCounts[http.StatusCreated] {
		out.first = "statuses " + r.StatusSummary()
	}
	return out
}

// capturePost POSTs one snapshot to p and returns its 201 for the bare
// server to repeat.
func capturePost(ctx context.Context, p *benchProc, key string) (bareEntry, []byte, error) {
	r := pgPostRequest(0)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url()+shared.PathUsage, bytes.NewReader(r.Body))
	if err != nil {
		return bareEntry{}, nil, fmt.Errorf("bench: %w", err)
	}
	req.Header = r.Header.Clone()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(shared.HeaderAPIKey, key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return bareEntry{}, nil, fmt.Errorf("bench: POST to %s: %w", p.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusCreated {
		return bareEntry{}, nil, fmt.Errorf("bench: POST to %s: %s %v: %.300s", p.name, resp.Status, err, body)
	}
	return bareEntry{Path: shared.PathUsage, Method: http.MethodPost, Status: http.StatusCreated, File: "pg-post.body",
		ContentType: resp.Header.Get("Content-Type"), Headers: capturedHeaders(resp.Header)}, body, nil
}

// loadAverage is the 1-minute load average from /proc/loadavg, "?" when
// it cannot be read: other work on the machine shows in every latency.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}
