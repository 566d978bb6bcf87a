//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/claude-usage/widget/bench/load"
	"github.com/claude-usage/widget/shared"
)

func init() { register("http", 20, runHTTPBench) }

const (
	httpRPSBudget = 0.60
	httpP99Budget = 5 * time.Millisecond
)

// httpTarget is one measured request.
type httpTarget struct {
	name     string
	target   string // path and query
	file     string // captured body's file name
	inBudget bool   // issue 6's budget names it
}

// httpTargets are health, latest and a nearest-timestamp lookup in the
// middle of the stored range (30 s off a stored minute, so that the lookup
// really has to pick the nearest).
func httpTargets(span [2]time.Time) []httpTarget {
	mid := span[0].Add(span[1].Sub(span[0]) / 2).Add(30 * time.Second)
	q := url.Values{"timestamp": {mid.UTC().Format(time.RFC3339)}}.Encode()
	return []httpTarget{
		{"GET /api/health", shared.PathHealth, "health.body", true},
		{"GET latest", shared.PathUsage, "latest.body", true},
		{"GET ?timestamp=", shared.PathUsage + "?" + q, "timestamp.body", false},
	}
}

// httpRig is the real server and its bare baseline, answering the same
// bytes.
type httpRig struct {
	real, bare *benchProc
	token      string
	targets    []httpTarget
	realStart  time.Duration // exec to first 200 from /api/health
	realMem    procMem       // right after that 200
	bareStart  time.Duration
}

func (r *httpRig) stop() {
	if r.bare != nil {
		r.bare.stop()
	}
	if r.real != nil {
		r.real.stop()
	}
}

// startHTTPRig seeds (once per run), starts the real server, captures its
// answers for the targets and starts the bare server on them.
func startHTTPRig(ctx context.Context, env *Env, tag string) (*httpRig, error) {
	if _, err := usageServerBin(env); err != nil {
		return nil, err
	}
	dir, span, err := seededDataDir(ctx, env)
	if err != nil {
		return nil, err
	}
	rig := &httpRig{token: benchSecret(), targets: httpTargets(span)}
	rig.real, err = startUsageServer(ctx, env, tag+"-server", dir, env.WebDir, benchSecret(), rig.token)
	if err != nil {
		return nil, err
	}
	healthy, err := rig.real.waitHealthy(ctx)
	if err != nil {
		rig.stop()
		return nil, err
	}
	rig.realStart = healthy.Sub(rig.real.started)
	if rig.realMem, err = readProcMem(rig.real.pid()); err != nil {
		rig.stop()
		return nil, err
	}

	entries, bodies, err := captureTargets(ctx, rig.real, rig.token, rig.targets)
	if err != nil {
		rig.stop()
		return nil, err
	}
	bodyDir := filepath.Join(env.TmpDir, tag+"-bare")
	if err := writeBareManifest(bodyDir, entries, bodies); err != nil {
		rig.stop()
		return nil, err
	}
	if rig.bare, err = startBareServer(ctx, env, tag+"-bare", bodyDir); err != nil {
		rig.stop()
		return nil, err
	}
	healthy, err = rig.bare.waitHealthy(ctx)
	if err != nil {
		rig.stop()
		return nil, err
	}
	rig.bareStart = healthy.Sub(rig.bare.started)
	// Same bytes from both, or the comparison is not fair.
	_, got, err := captureTargets(ctx, rig.bare, rig.token, rig.targets)
	if err != nil {
		rig.stop()
		return nil, fmt.Errorf("bench: the bare server: %w", err)
	}
	for i, b := range got {
		if string(b) != string(bodies[i]) {
			rig.stop()
			return nil, fmt.Errorf("bench: the bare server answers %s with other bytes than the real one", rig.targets[i].target)
		}
	}
	return rig, nil
}

// captureTargets GETs each target once with the read token and returns
// the answers; each must be a 200 with Content-Length.
func captureTargets(ctx context.Context, p *benchProc, token string, targets []httpTarget) ([]bareEntry, [][]byte, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	var entries []bareEntry
	var bodies [][]byte
	for _, t := range targets {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url()+t.target, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("bench: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, fmt.Errorf("bench: GET %s from %s: %w", t.target, p.name, err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("bench: GET %s from %s: %w", t.target, p.name, err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, nil, fmt.Errorf("bench: GET %s from %s: status %d: %.300s", t.target, p.name, resp.StatusCode, body)
		}
		path, _, _ := strings.Cut(t.target, "?")
		entries = append(entries, bareEntry{Path: path, Query: bareQuery(t.target),
			ContentType: resp.Header.Get("Content-Type"), File: t.file, Headers: capturedHeaders(resp.Header)})
		bodies = append(bodies, body)
	}
	return entries, bodies, nil
}

// capturedHeaders are the headers the bare server repeats: all but those
// every fiber answer carries anyway or that describe the connection.
func capturedHeaders(h http.Header) [][2]string {
	var out [][2]string
	for k, vs := range h {
		switch k {
		case "Date", "Content-Length", "Content-Type", "Connection", "Server", "Transfer-Encoding":
			continue
		}
		for _, v := range vs {
			out = append(out, [2]string{k, v})
		}
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out
}

// httpLoad runs one round of load against one server and target and adds
// it to series.
func httpLoad(ctx context.Context, env *Env, series *load.Series, p *benchProc, token, target string, d time.Duration) error {
	err := series.Run(ctx, load.Options{
		URL: p.url() + target, Conns: env.Conns, Duration: d,
		Header: http.Header{"Authorization": {"Bearer " + token}},
	})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

func runHTTPBench(ctx context.Context, env *Env) ([]Row, error) {
	if env.Rounds < 1 || env.Duration <= 0 || env.Conns < 1 {
		return nil, fmt.Errorf("bench: http needs -rounds >= 1, -duration > 0 and -conns >= 1")
	}
	rig, err := startHTTPRig(ctx, env, "http")
	if err != nil {
		return nil, err
	}
	defer rig.stop()
	env.Logf("http: real server on %s (healthy %s after exec), bare on %s", rig.real.addr,
		rig.realStart.Round(time.Millisecond), rig.bare.addr)

	warm := min(env.Duration, 500*time.Millisecond)
	var rows []Row
	for _, t := range rig.targets {
		for _, p := range []*benchProc{rig.real, rig.bare} {
			if err := httpLoad(ctx, env, &load.Series{}, p, rig.token, t.target, warm); err != nil {
				return rows, err
			}
		}
		var realRuns, bareRuns load.Series
		var realCPU, bareCPU httpCPU
		for round := range env.Rounds {
			// ABBA order, so that a drift in machine load during the run
			// hits both sides alike.
			order := []*benchProc{rig.real, rig.bare}
			if round%2 == 1 {
				order = []*benchProc{rig.bare, rig.real}
			}
			for _, p := range order {
				series, cpu := &realRuns, &realCPU
				if p == rig.bare {
					series, cpu = &bareRuns, &bareCPU
				}
				srv0, gen0 := httpCPUNow(p)
				if err := httpLoad(ctx, env, series, p, rig.token, t.target, env.Duration); err != nil {
					return rows, err
				}
				srv1, gen1 := httpCPUNow(p)
				*cpu = cpu.add(httpCPU{srv1 - srv0, gen1 - gen0})
			}
		}
		if err := writeHDR(env, t, &realRuns, &bareRuns); err != nil {
			return rows, err
		}
		real, bare := realRuns.Result(), bareRuns.Result()
		env.Logf("http: %s real %s, bare %s", t.name, httpSummary(real), httpSummary(bare))
		r := httpRows(env, t, real, bare)
		if t.target != shared.PathHealth {
			r[0].Note += "; real logs 1 access line/request (info, to a file)"
		}
		rows = append(rows, r...)
		rows = append(rows, httpCPURow(t, realCPU, bareCPU, real.Requests, bare.Requests))
	}
	return rows, nil
}

// writeHDR writes the latency distributions of a target, real and bare, in
// the HDR histogram plot format to env.OutDir (none when it is "").
func writeHDR(env *Env, t httpTarget, real, bare *load.Series) error {
	if env.OutDir == "" {
		return nil
	}
	for side, s := range map[string]*load.Series{"server": real, "bare": bare} {
		name := filepath.Join(env.OutDir, "latency-"+strings.TrimSuffix(t.file, ".body")+"-"+side+".hdr")
		var b strings.Builder
		if err := s.WriteHDR(&b); err != nil {
			return fmt.Errorf("bench: %s: %w", name, err)
		}
		if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

// httpCPU is CPU time used during load: by the server and by this
// process (the generator). Per request it is much less sensitive to other
// processes on the machine than requests/s.
type httpCPU struct{ srv, gen time.Duration }

func (c httpCPU) add(o httpCPU) httpCPU { return httpCPU{c.srv + o.srv, c.gen + o.gen} }

func (c httpCPU) perReq(n int, gen bool) string {
	d := c.srv
	if gen {
		d = c.gen
	}
	if n == 0 || d <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.0fµs", float64(d)/float64(n)/1e3)
}

// httpCPURow is the server's CPU time per request next to the bare
// server's. Unlike req/s and p99 it does not depend on how much of the two
// cores the generator takes (vegeta's net/http client costs more per
// request than either server).
func httpCPURow(t httpTarget, real, bare httpCPU, realN, bareN int) Row {
	r := Row{Name: t.name + " CPU/req", Value: real.perReq(realN, false), Baseline: bare.perReq(bareN, false),
		Note: "CPU time of the server process per request; the generator's: " + real.perReq(realN, true)}
	if realN > 0 && bareN > 0 && real.srv > 0 && bare.srv > 0 {
		r.Ratio = ratio(float64(real.srv)/float64(realN), float64(bare.srv)/float64(bareN))
	}
	return r
}

// httpCPUNow reads the CPU time of p and of this process; a failed read
// gives 0, which perReq shows as "?".
func httpCPUNow(p *benchProc) (srv, gen time.Duration) {
	srv, _ = procCPU(p.pid())
	return srv, selfCPU()
}

func httpRows(env *Env, t httpTarget, real, bare load.Result) []Row {
	clean := real.Errors == 0 && real.NonOK() == 0 && real.Requests > 0
	note := fmt.Sprintf("%d conns, %d×%s rounds each; bare answers the same headers and body", env.Conns, env.Rounds, env.Duration)
	if !clean {
		note = "INVALID: real " + httpProblems(real) + "; " + note
	}
	if bare.Errors > 0 || bare.NonOK() > 0 || bare.Requests == 0 {
		note = "bare " + httpProblems(bare) + "; " + note
	}
	if !t.inBudget {
		note += "; issue 6's budget names health and latest only"
	}
	r := real.RPS / max(bare.RPS, 1e-9)
	return []Row{
		{
			Name:     t.name + " req/s",
			Value:    httpSummary(real),
			Baseline: httpSummary(bare),
			Ratio:    ratio(real.RPS, bare.RPS),
			Budget:   fmt.Sprintf(">= %.2fx bare", httpRPSBudget),
			Met:      check(clean && r >= httpRPSBudget),
			Note:     note,
		},
		{
			Name:     t.name + " p99",
			Value:    httpMS(real.P99),
			Baseline: httpMS(bare.P99),
			Ratio:    ratio(float64(real.P99), float64(bare.P99)),
			Budget:   fmt.Sprintf("<= %d ms", httpP99Budget.Milliseconds()),
			Met:      check(clean && real.P99 <= httpP99Budget),
			Note:     fmt.Sprintf("%d conns on loopback; max %s", env.Conns, httpMS(real.Max)),
		},
	}
}

// httpProblems says what was wrong with a run's responses.
func httpProblems(r load.Result) string {
	s := "statuses " + r.StatusSummary()
	if r.Requests == 0 {
		s = "no responses"
	}
	if r.Errors > 0 {
		s += fmt.Sprintf(", %d errors (first: %s)", r.Errors, r.FirstError)
	}
	return s
}

func httpSummary(r load.Result) string {
	return fmt.Sprintf("%.0f req/s p50 %s p99 %s", r.RPS, httpMS(r.P50), httpMS(r.P99))
}

func httpMS(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 1:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.0fms", ms)
	}
}
