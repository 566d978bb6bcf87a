//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/claude-usage/widget/scraper/browser"
)

// scraperDaemonScrapes is how many scrapes each daemon mode is measured
// over (after its first, which creates the profile).
const scraperDaemonScrapes = 3

// daemonInterval is the shortest interval the scraper accepts.
const daemonInterval = 10 * time.Second

// daemonSample is one daemon mode measured between scrapes.
type daemonSample struct {
	scraperRSSKB int64         // the usage-scraper process
	chromePSSKB  int64         // its Chromium processes, 0 when none
	chromeProcs  int           // Chromium processes alive between scrapes
	cpuPerScrape time.Duration // scraper + Chromium CPU over the scrapes / scrapes
}

// scraperDaemonRows runs the real usage-scraper binary against the
// fixture and a real usage-server, once in the default mode and once with
// --keep-browser, and reports memory between scrapes and CPU per scrape
// side by side.
func scraperDaemonRows(ctx context.Context, env *Env, url string) ([]Row, error) {
	bin := filepath.Join(env.BinDir, "usage-scraper")
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		return nil, fmt.Errorf("bench: %s not found: run make build (or pass -bin)", bin)
	}
	key, token := benchSecret(), benchSecret()
	web := filepath.Join(env.TmpDir, "daemon-web")
	if err := os.MkdirAll(web, 0o700); err != nil {
		return nil, err
	}
	srv, err := startUsageServer(ctx, env, "daemon-server", filepath.Join(env.TmpDir, "daemon-data"), web, key, token)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	def, err := measureDaemon(ctx, env, bin, srv.url(), key, url, false)
	if err != nil {
		return nil, err
	}
	keep, err := measureDaemon(ctx, env, bin, srv.url(), key, url, true)
	if err != nil {
		return nil, err
	}
	return []Row{
		{
			Name:     "scraper RSS between scrapes (default)",
			Value:    memMB(def.scraperRSSKB),
			Baseline: memMB(keep.scraperRSSKB+keep.chromePSSKB) + " keep",
			Budget:   "<= 30 MB, no Chromium",
			Met:      check(memBytes(def.scraperRSSKB) <= 30e6 && def.chromeProcs == 0),
			Note: fmt.Sprintf("usage-scraper run --source browser, after %d scrapes: %d Chromium processes alive between scrapes; baseline --keep-browser: scraper RSS %s + Chromium PSS %s in %d processes",
				scraperDaemonScrapes+1, def.chromeProcs, memMB(keep.scraperRSSKB), memMB(keep.chromePSSKB), keep.chromeProcs),
		},
		{
			Name:     "CPU per scrape (default)",
			Value:    fmt.Sprintf("%.2f s", def.cpuPerScrape.Seconds()),
			Baseline: fmt.Sprintf("%.2f s keep", keep.cpuPerScrape.Seconds()),
			Ratio:    ratio(def.cpuPerScrape.Seconds(), keep.cpuPerScrape.Seconds()),
			Note: fmt.Sprintf("user+system CPU of usage-scraper and every Chromium process it ran (reaped children included) over %d scrapes, sync and status reports included",
				scraperDaemonScrapes),
		},
	}, nil
}

// measureDaemon starts `usage-scraper run` and samples it after its first
// scrape and after scraperDaemonScrapes more, each time once the scrape's
// Chromium has gone (default mode) or the scrape is logged (keep).
func measureDaemon(ctx context.Context, env *Env, bin, server, key, url string, keep bool) (daemonSample, error) {
	name := "daemon-default"
	if keep {
		name = "daemon-keep"
	}
	dir := filepath.Join(env.TmpDir, name)
	chrome, err := browser.FindChrome("")
	if err != nil {
		return daemonSample{}, err
	}
	args := []string{"run", "--source", "browser", "--usage-url", url, "--server", server, "--interval", daemonInterval.String(),
		"--profile-dir", filepath.Join(dir, "profile"), "--outbox-dir", filepath.Join(dir, "outbox"), "--chrome-path", chrome,
		"--log-format", "json", fmt.Sprintf("--keep-browser=%v", keep)}
	logPath := filepath.Join(env.TmpDir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return daemonSample{}, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "USAGE_") && !strings.HasPrefix(kv, "HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// HOME away from any real Claude Code login; the key by environment.
	cmd.Env = append(cmd.Env, "HOME="+dir, "USAGE_API_KEY="+key)
	if err := cmd.Start(); err != nil {
		return daemonSample{}, fmt.Errorf("bench: start %s: %w", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}()
	pid := cmd.Process.Pid
	settle := func(n int) (daemonSample, error) {
		deadline := time.Now().Add(time.Duration(n+1) * 2 * daemonInterval)
		for {
			select {
			case <-done:
				return daemonSample{}, fmt.Errorf("bench: %s exited; log %s", name, logPath)
			case <-ctx.Done():
				return daemonSample{}, ctx.Err()
			default:
			}
			raw, _ := os.ReadFile(logPath)
			scraped := bytes.Count(raw, []byte(`"msg":"scraped"`))
			tree, _ := chromeTree(pid)
			if scraped >= n && (keep || len(tree) == 1) {
				// The status report follows the scrape; let it finish.
				time.Sleep(500 * time.Millisecond)
				return sampleDaemon(pid)
			}
			if time.Now().After(deadline) {
				return daemonSample{}, fmt.Errorf("bench: %s: %d scrapes logged, want %d, %d processes in its tree; log %s",
					name, scraped, n, len(tree), logPath)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	first, err := settle(1)
	if err != nil {
		return daemonSample{}, err
	}
	last, err := settle(1 + scraperDaemonScrapes)
	if err != nil {
		return daemonSample{}, err
	}
	last.cpuPerScrape = (last.cpuPerScrape - first.cpuPerScrape) / scraperDaemonScrapes
	env.Logf("scraper: %s: scraper RSS %s, Chromium %d processes PSS %s, CPU %.2f s per scrape", name,
		memMB(last.scraperRSSKB), last.chromeProcs, memMB(last.chromePSSKB), last.cpuPerScrape.Seconds())
	return last, nil
}

// sampleDaemon reads the scraper's RSS, its Chromium's PSS and the total
// CPU time of the tree so far (cpuPerScrape holds the running total).
func sampleDaemon(pid int) (daemonSample, error) {
	m, err := readProcMem(pid)
	if err != nil {
		return daemonSample{}, err
	}
	s := daemonSample{scraperRSSKB: m.RSSKB}
	tree, err := chromeTree(pid)
	if err != nil {
		return daemonSample{}, err
	}
	for _, p := range tree {
		s.cpuPerScrape += treeCPU(p)
		if p == pid {
			continue
		}
		s.chromeProcs++
		if pss, err := procField(fmt.Sprintf("/proc/%d/smaps_rollup", p), "Pss:"); err == nil {
			s.chromePSSKB += pss
		}
	}
	return s, nil
}

// treeCPU is a process's user+system time plus that of its reaped
// children (cutime, cstime): a Chromium that ran and exited still counts.
func treeCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	for _, k := range []int{11, 12, 13, 14} {
		v, _ := strconv.ParseInt(f[k], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// statuslineRow runs `usage-scraper statusline` as Claude Code does, with
// a statusline JSON on stdin, and times each call from exec to exit.
func statuslineRow(ctx context.Context, env *Env) (Row, error) {
	bin := filepath.Join(env.BinDir, "usage-scraper")
	in := fmt.Sprintf(`{"session_id":"bench","model":{"id":"claude-opus-4-1","display_name":"Opus"},"rate_limits":{"five_hour":{"used_percentage":42,"resets_at":%d},"seven_day":{"used_percentage":18,"resets_at":%d}}}`,
		time.Now().Add(2*time.Hour).Unix(), time.Now().Add(72*time.Hour).Unix())
	const n = 21
	var times []time.Duration
	for i := range n {
		if err := ctx.Err(); err != nil {
			return Row{}, err
		}
		// A fresh outbox each time: every call creates it and queues, the
		// most a call ever does (the throttle makes most calls cheaper).
		ob := filepath.Join(env.TmpDir, "statusline", strconv.Itoa(i))
		cmd := exec.CommandContext(ctx, bin, "statusline", "--outbox-dir", ob)
		cmd.Env = []string{"HOME=" + env.TmpDir}
		cmd.Stdin = strings.NewReader(in)
		var out bytes.Buffer
		cmd.Stdout = &out
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			return Row{}, fmt.Errorf("bench: statusline: %w", err)
		}
		d := time.Since(t0)
		if !strings.HasPrefix(out.String(), "5h 42%") {
			return Row{}, fmt.Errorf("bench: statusline printed %q", out.String())
		}
		if i > 0 { // the first one meets a cold page cache
			times = append(times, d)
		}
	}
	med := median(times)
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	p90 := sorted[len(sorted)*9/10]
	return Row{
		Name:   "statusline latency",
		Value:  fmt.Sprintf("%.1f ms", float64(med)/1e6),
		Budget: "p90 <= 50 ms",
		Met:    check(p90 <= 50*time.Millisecond),
		Note: fmt.Sprintf("exec to exit of usage-scraper statusline with Claude Code's JSON on stdin, %d calls, each creating its outbox and queuing a snapshot: median %.1f ms, p90 %.1f ms, max %.1f ms",
			len(times), float64(med)/1e6, float64(p90)/1e6, float64(sorted[len(sorted)-1])/1e6),
	}, nil
}
