//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/claude-usage/widget/bench/load"
)

// benchProc is a server process started by the http and rss sections: its
// own process group (so that stopping it leaves nothing behind), stdout
// and stderr in a log file under env.TmpDir.
type benchProc struct {
	name    string
	cmd     *exec.Cmd
	addr    string    // host:port from its "listening on" line
	started time.Time // just before exec
	logPath string
	done    chan struct{} // closed when the process has been reaped
}

// benchSecret is a random key or token for the servers of one run.
func benchSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// usageServerBin is env.BinDir/usage-server, or a clear error when the
// build is missing.
func usageServerBin(env *Env) (string, error) {
	p := filepath.Join(env.BinDir, "usage-server")
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		return "", fmt.Errorf("bench: %s not found: run make build (or pass -bin)", p)
	}
	return p, nil
}

// startUsageServer starts the real server on the seeded dir with the given
// keys. Retention keeps every seeded version so that the data does not
// change between sections; everything else is the production default.
func startUsageServer(ctx context.Context, env *Env, name, dataDir, webDir, apiKey, readToken string) (*benchProc, error) {
	bin, err := usageServerBin(env)
	if err != nil {
		return nil, err
	}
	args := []string{"--addr", "127.0.0.1:0", "--data-dir", dataDir, "--web-dir", webDir,
		"--retention-versions", strconv.Itoa(env.Versions)}
	// Keys go through the environment so that they are not in ps output.
	extra := []string{"USAGE_API_KEY=" + apiKey, "USAGE_READ_TOKEN=" + readToken}
	return startBenchProc(ctx, env, name, bin, args, extra)
}

// startBenchProc runs bin and waits for its "listening on host:port" line.
// The inherited environment loses every USAGE_* variable so that the
// measured configuration is only what args and extraEnv say.
func startBenchProc(ctx context.Context, env *Env, name, bin string, args, extraEnv []string) (*benchProc, error) {
	logPath := filepath.Join(env.TmpDir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bench: %s log: %w", name, err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("bench: %s stdout pipe: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = pw
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "USAGE_") && !strings.HasPrefix(kv, "SYNC_VERBOSE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, extraEnv...)

	p := &benchProc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		_ = pr.Close()
		_ = pw.Close()
		_ = logf.Close()
		return nil, fmt.Errorf("bench: starting %s (%s): %w", name, bin, err)
	}
	_ = pw.Close() // the child holds the write end now

	addrc := make(chan string, 1)
	go func() {
		// Reads to EOF so that the process never blocks on a full pipe.
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			if a, ok := strings.CutPrefix(line, "listening on "); ok {
				select {
				case addrc <- strings.TrimSpace(a):
				default:
				}
			}
			fmt.Fprintln(logf, line)
		}
		_ = pr.Close()
	}()
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()

	timer := time.NewTimer(2 * time.Minute)
	defer timer.Stop()
	select {
	case p.addr = <-addrc:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("bench: %s exited at start (%s); log %s:\n%s", name, cmd.ProcessState, logPath, p.logTail())
	case <-timer.C:
		p.stop()
		return nil, fmt.Errorf("bench: %s printed no address in 2 min; log:\n%s", name, p.logTail())
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

func (p *benchProc) pid() int { return p.cmd.Process.Pid }

// url is the base URL of the server.
func (p *benchProc) url() string { return "http://" + p.addr }

// logTail is the end of the log, for error messages.
func (p *benchProc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// stop sends SIGTERM to the process group, SIGKILL after 10 s, and reaps.
func (p *benchProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// waitHealthy polls GET /api/health until it answers 200 and returns when
// it did.
func (p *benchProc) waitHealthy(ctx context.Context) (time.Time, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(time.Minute)
	var last error
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url()+"/api/health", nil)
		if err != nil {
			return time.Time{}, fmt.Errorf("bench: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Now(), nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
		select {
		case <-p.done:
			return time.Time{}, fmt.Errorf("bench: %s exited before it was healthy; log:\n%s", p.name, p.logTail())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return time.Time{}, fmt.Errorf("bench: %s not healthy after 1 min: %v", p.name, last)
}

// procMem is a process's memory from /proc/<pid>/status, in kB.
type procMem struct{ RSSKB, HWMKB int64 }

func readProcMem(pid int) (procMem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{}, fmt.Errorf("bench: reading memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	var m procMem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if name == "VmRSS" {
			m.RSSKB = n
		} else {
			m.HWMKB = n
		}
	}
	if err := sc.Err(); err != nil {
		return procMem{}, fmt.Errorf("bench: reading memory of pid %d: %w", pid, err)
	}
	if m.RSSKB == 0 {
		return procMem{}, errors.New("bench: no VmRSS in /proc status (not Linux?)")
	}
	return m, nil
}

// memMB formats kB (KiB, as /proc reports) as MB of 10^6 bytes, the unit
// of the budget.
func memMB(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)*1024/1e6) }

// memBytes converts /proc kB to bytes.
func memBytes(kb int64) float64 { return float64(kb) * 1024 }

func init() { register("rss", 30, runRSSBench) }

const (
	rssBudgetBytes = 40e6
	rssLoad        = 2 * time.Second
)

// runRSSBench starts its own real server on the seeded store (so that it
// does not depend on the http section), reads its memory once healthy and
// again after rssLoad of GET latest, and does the same for the bare server
// for reference.
func runRSSBench(ctx context.Context, env *Env) ([]Row, error) {
	if env.Conns < 1 {
		return nil, errors.New("bench: rss needs -conns >= 1")
	}
	rig, err := startHTTPRig(ctx, env, "rss")
	if err != nil {
		return nil, err
	}
	defer rig.stop()
	bareStart, err := readProcMem(rig.bare.pid())
	if err != nil {
		return nil, err
	}
	latest := rig.targets[1]
	var realLoad, bareLoad load.Series
	if err := httpLoad(ctx, env, &realLoad, rig.real, rig.token, latest.target, rssLoad); err != nil {
		return nil, err
	}
	realAfter, err := readProcMem(rig.real.pid())
	if err != nil {
		return nil, err
	}
	if err := httpLoad(ctx, env, &bareLoad, rig.bare, rig.token, latest.target, rssLoad); err != nil {
		return nil, err
	}
	bareAfter, err := readProcMem(rig.bare.pid())
	if err != nil {
		return nil, err
	}
	env.Logf("rss: server %s at start, %s after load (peak %s); bare %s, %s (peak %s)",
		memMB(rig.realMem.RSSKB), memMB(realAfter.RSSKB), memMB(realAfter.HWMKB),
		memMB(bareStart.RSSKB), memMB(bareAfter.RSSKB), memMB(bareAfter.HWMKB))

	realRes, bareRes := realLoad.Result(), bareLoad.Result()
	worst := max(rig.realMem.RSSKB, realAfter.RSSKB)
	note := fmt.Sprintf("VmRSS after start %s, after %s of GET latest %s; peak VmHWM %s; bare peak %s; MB = 10^6 bytes",
		memMB(rig.realMem.RSSKB), rssLoad, memMB(realAfter.RSSKB), memMB(realAfter.HWMKB), memMB(bareAfter.HWMKB))
	if p := httpProblems(realRes); realRes.Errors > 0 || realRes.NonOK() > 0 || realRes.Requests == 0 {
		note = "load was not clean: " + p + "; " + note
	}
	if memBytes(realAfter.HWMKB) >= rssBudgetBytes {
		note += "; the peak is over the budget"
	}
	if bareRes.Errors > 0 || bareRes.NonOK() > 0 {
		note += "; bare load: " + httpProblems(bareRes)
	}
	rows := []Row{
		{
			Name:     fmt.Sprintf("server RSS, %d versions", env.Versions),
			Value:    memMB(worst),
			Baseline: memMB(bareAfter.RSSKB),
			Ratio:    ratio(float64(worst), float64(bareAfter.RSSKB)),
			Budget:   fmt.Sprintf("< %.0f MB", rssBudgetBytes/1e6),
			Met:      check(memBytes(worst) < rssBudgetBytes),
			Note:     note,
		},
		{
			Name:     fmt.Sprintf("server startup, %d versions", env.Versions),
			Value:    httpMS(rig.realStart),
			Baseline: httpMS(rig.bareStart),
			Ratio:    ratio(float64(rig.realStart), float64(rig.bareStart)),
			Note:     "exec to the first 200 from /api/health; the store was closed cleanly before (restart case); baseline: the bare fiber process",
		},
	}
	attr, err := rssAttribution(ctx, env)
	if err != nil {
		return rows, err
	}
	return append(rows, attr), nil
}

// rssAttribution starts the server twice more, once without the widget's
// app.wasm (an empty --web-dir) and once on a store of one version, and reads
// VmRSS once healthy: where the memory at start goes.
func rssAttribution(ctx context.Context, env *Env) (Row, error) {
	dir, _, err := seededDataDir(ctx, env)
	if err != nil {
		return Row{}, err
	}
	emptyWeb := filepath.Join(env.TmpDir, "rss-empty-web")
	if err := os.MkdirAll(emptyWeb, 0o700); err != nil {
		return Row{}, fmt.Errorf("bench: %w", err)
	}
	// One version rather than none: an empty store is not healthy.
	oneData := filepath.Join(env.TmpDir, "rss-one-version")
	if _, err := seedStore(ctx, oneData, 1, time.Now()); err != nil {
		return Row{}, err
	}
	measure := func(name, data, web string) (procMem, time.Duration, error) {
		p, err := startUsageServer(ctx, env, name, data, web, benchSecret(), benchSecret())
		if err != nil {
			return procMem{}, 0, err
		}
		defer p.stop()
		healthy, err := p.waitHealthy(ctx)
		if err != nil {
			return procMem{}, 0, err
		}
		m, err := readProcMem(p.pid())
		return m, healthy.Sub(p.started), err
	}
	noWasm, noWasmStart, err := measure("rss-no-wasm", dir, emptyWeb)
	if err != nil {
		return Row{}, err
	}
	noData, noDataStart, err := measure("rss-one-version", oneData, env.WebDir)
	if err != nil {
		return Row{}, err
	}
	return Row{
		Name:  "server RSS at start, split",
		Value: fmt.Sprintf("no app.wasm %s, 1 version %s", memMB(noWasm.RSSKB), memMB(noData.RSSKB)),
		Note: fmt.Sprintf("VmRSS once healthy of the same server with an empty --web-dir (%d versions) and with a 1-version store (app.wasm served); startup %s and %s",
			env.Versions, httpMS(noWasmStart), httpMS(noDataStart)),
	}, nil
}

// procCPU is the CPU time (user+system) a process has used so far, from
// /proc/<pid>/stat, whose unit is the USER_HZ tick of 10 ms on Linux.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: reading CPU time of pid %d: %w", pid, err)
	}
	// The command name may hold spaces; fields after its ")" start with
	// state (field 3); utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: malformed /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: malformed /proc/%d/stat", pid)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// selfCPU is this process's CPU time: during a load run, the generator's.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
