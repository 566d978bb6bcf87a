//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claude-usage/widget/bench/load"
	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/server/storemigrate"
	"github.com/claude-usage/widget/shared"
)

// The pg section: GET latest and POST through the file store, one
// PostgreSQL replica and two replicas on one database, in the same run,
// next to the bare fiber handler answering the same bytes. The cluster is
// a throwaway one (initdb in the temp dir, fsync off like the tests'), so
// the figures are the server's and the driver's cost, not a disk's.

func init() { register("pg", 25, runPGBench) }

const (
	pgGetBudget  = 0.50 // GET latest req/s >= 0.5 × bare
	pgPostBudget = 10 * time.Millisecond
	// pgPostRate is the fixed rate of the POST latency rows, in POSTs per
	// second through each side (split over its replicas): 50 times what a
	// team of 100 accounts, each scraped once a minute, sends (~2/s).
	pgPostRate = 100
	// pgPostInFlight bounds the open loop's POSTs in flight; a POST is sent
	// late only when that many are unanswered, which SentRate shows.
	pgPostInFlight = 64
	pgPostConns    = 4 // the saturation rows: POSTs at a time, several scrapers' outboxes draining at once
)

func runPGBench(ctx context.Context, env *Env) ([]Row, error) {
	if env.Rounds < 1 || env.Duration <= 0 || env.Conns < 2 {
		return nil, fmt.Errorf("bench: pg needs -rounds >= 1, -duration > 0 and -conns >= 2")
	}
	bin, err := usageServerBin(env)
	if err != nil {
		return nil, err
	}
	seed, _, err := seededDataDir(ctx, env)
	if err != nil {
		return nil, err
	}
	// The POSTs below add versions: the file store gets a copy of the seed
	// so that later sections see the seed unchanged.
	fileDir := filepath.Join(env.TmpDir, "pg-file-data")
	if err := copyTree(seed, fileDir); err != nil {
		return nil, err
	}
	cluster, err := testutil.StartPostgres()
	if err != nil {
		return nil, err
	}
	defer cluster.Close()
	dsn, err := pgBenchDatabase(ctx, cluster)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	quiet := slog.New(slog.DiscardHandler)
	if err := storemigrate.Copy(ctx, storemigrate.Options{From: "file", DataDir: seed, To: dsn}, io.Discard, quiet); err != nil {
		return nil, err
	}
	env.Logf("pg: copied %d versions into PostgreSQL in %s", env.Versions, time.Since(start).Round(time.Millisecond))

	key, token := benchSecret(), benchSecret()
	common := []string{"--addr", "127.0.0.1:0", "--web-dir", env.WebDir, "--rate-limit", "0",
		"--retention-versions", strconv.Itoa(env.Versions + 1_000_000)}
	keys := []string{"USAGE_API_KEY=" + key, "USAGE_READ_TOKEN=" + token}
	var procs []*benchProc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	startOne := func(name, dataDir string, extra ...string) (*benchProc, error) {
		p, err := startBenchProc(ctx, env, name, bin, append(slices.Clone(common), "--data-dir", dataDir),
			append(slices.Clone(keys), extra...))
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		if _, err := p.waitHealthy(ctx); err != nil {
			return nil, err
		}
		return p, nil
	}
	file, err := startOne("pg-file", fileDir)
	if err != nil {
		return nil, err
	}
	pg1, err := startOne("pg-replica1", filepath.Join(env.TmpDir, "pg-replica1"), "USAGE_STORE="+dsn)
	if err != nil {
		return nil, err
	}
	pg2, err := startOne("pg-replica2", filepath.Join(env.TmpDir, "pg-replica2"), "USAGE_STORE="+dsn)
	if err != nil {
		return nil, err
	}
	// Health too: the bare server is ready when it answers it.
	latest := []httpTarget{{"GET /api/health", shared.PathHealth, "pg-health.body", true}, {"GET latest", shared.PathUsage, "pg-latest.body", true}}
	entries, bodies, err := captureTargets(ctx, pg1, token, latest)
	if err != nil {
		return nil, err
	}
	postEntry, postBody, err := capturePost(ctx, pg1, key)
	if err != nil {
		return nil, err
	}
	entries, bodies = append(entries, postEntry), append(bodies, postBody)
	bareDir := filepath.Join(env.TmpDir, "pg-bare")
	if err := writeBareManifest(bareDir, entries, bodies); err != nil {
		return nil, err
	}
	bare, err := startBareServer(ctx, env, "pg-bare", bareDir)
	if err != nil {
		return nil, err
	}
	procs = append(procs, bare)
	if _, err := bare.waitHealthy(ctx); err != nil {
		return nil, err
	}

	sides := []struct {
		name  string
		procs []*benchProc
	}{
		{"file store", []*benchProc{file}},
		{"PostgreSQL, 1 replica", []*benchProc{pg1}},
		{"PostgreSQL, 2 replicas", []*benchProc{pg1, pg2}},
	}
	// Round by round, bare and each side in turn (rotating the order), so
	// that a change in machine load during the run hits all of them.
	bareSide := []*benchProc{bare}
	all := append([][]*benchProc{bareSide}, file.one(), pg1.one(), []*benchProc{pg1, pg2})
	series := make([][]load.Series, len(all))
	for i, ps := range all {
		series[i] = make([]load.Series, len(ps))
		if err := pgGetRound(ctx, env, ps, make([]load.Series, len(ps)), token, min(env.Duration, 500*time.Millisecond)); err != nil {
			return nil, err // warm-up
		}
	}
	for round := range env.Rounds {
		for k := range all {
			i := (k + round) % len(all)
			if err := pgGetRound(ctx, env, all[i], series[i], token, env.Duration); err != nil {
				return nil, err
			}
		}
	}
	bareR := pgSum(series[0])
	var rows []Row
	for si, side := range sides {
		res := pgSum(series[si+1])
		clean := res.errs == 0 && res.requests > 0
		note := fmt.Sprintf("%d conns split over the replicas, %d×%s interleaved with bare; p99 is the worst replica's", env.Conns, env.Rounds, env.Duration)
		if !clean {
			note = fmt.Sprintf("INVALID: %d errors or non-200s; ", res.errs) + note
		}
		rows = append(rows, Row{
			Name:     "GET latest req/s (" + side.name + ")",
			Value:    fmt.Sprintf("%.0f req/s p99 %s", res.rps, httpMS(res.p99)),
			Baseline: fmt.Sprintf("%.0f req/s p99 %s", bareR.rps, httpMS(bareR.p99)),
			Ratio:    ratio(res.rps, bareR.rps),
			Budget:   fmt.Sprintf(">= %.2fx bare", pgGetBudget),
			Met:      check(clean && res.rps >= pgGetBudget*bareR.rps),
			Note:     note,
		})
	}
	postRows, err := pgPostRows(ctx, env, key, bareSide, sides[0].procs, sides[1].procs, sides[2].procs)
	rows = append(rows, postRows...)
	if err != nil {
		return rows, err
	}
	return rows, nil
}

// pgBenchDatabase creates the bench's database in the cluster.
func pgBenchDatabase(ctx context.Context, c *testutil.Postgres) (string, error) {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE usage_bench"); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return c.DSN("usage_bench"), nil
}

func (p *benchProc) one() []*benchProc { return []*benchProc{p} }

type pgGetResult struct {
	rps      float64
	p99      time.Duration
	requests int
	errs     int
}

// pgGetRound loads GET latest on every proc at once for d, the
// connections split between them, adding to series (one per proc).
func pgGetRound(ctx context.Context, env *Env, procs []*benchProc, series []load.Series, token string, d time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, len(procs))
	for i, p := range procs {
		wg.Go(func() {
			errs[i] = series[i].Run(ctx, load.Options{URL: p.url() + shared.PathUsage, Conns: env.Conns / len(procs),
				Duration: d, Header: http.Header{"Authorization": {"Bearer " + token}}})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

// pgSum adds up the replicas' series: req/s add, p99 is the worst.
func pgSum(series []load.Series) pgGetResult {
	var out pgGetResult
	for i := range series {
		r := series[i].Result()
		out.rps += r.RPS
		out.p99 = max(out.p99, r.P99)
		out.requests += r.Requests
		out.errs += r.Errors + r.NonOK()
	}
	return out
}

// copyTree copies the regular files under src to dst.
func copyTree(src, dst string) error {
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o600)
	})
	if err != nil {
		return fmt.Errorf("bench: copying the seed: %w", err)
	}
	return nil
}
