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
	"path/filepath"
	"slices"
	"time"
)

const (
	// meterSelector is what a user sees as a meter: the element the e2e
	// tests in e2e/widget wait for, and the one bench/bareapp renders.
	meterSelector = "li.meter"
	// firstMeterTimeout bounds one cold load: compiling 8 MB of wasm on a
	// busy two-core machine takes seconds, not minutes.
	firstMeterTimeout = 90 * time.Second
	widgetBudget      = 1.5
)

func init() {
	register("widget", 50, runWidget)
}

// runWidget measures the time from navigation to the first visible meter,
// cold, for the real widget and for the bare go-app page, alternating.
func runWidget(ctx context.Context, env *Env) ([]Row, error) {
	if _, err := benchChromiumPath(); err != nil {
		return nil, err
	}
	if _, err := wasmSizes(env.WebDir); err != nil {
		return nil, err
	}
	if _, err := usageServerBin(env); err != nil {
		return nil, err
	}
	bareDir, err := bareWeb(ctx, env)
	if err != nil {
		return nil, err
	}

	widgetSrv, err := startWidgetServer(ctx, env, "widget", env.WebDir)
	if err != nil {
		return nil, err
	}
	defer widgetSrv.stop()
	bareSrv, err := startWidgetServer(ctx, env, "bare", bareDir)
	if err != nil {
		return nil, err
	}
	defer bareSrv.stop()
	// Both get the same data, though only the widget reads it.
	for _, s := range []*widgetServer{widgetSrv, bareSrv} {
		if err := s.postSnapshot(ctx); err != nil {
			return nil, err
		}
		if err := s.checkFair(ctx); err != nil {
			return nil, err
		}
	}

	browser, stopBrowser, err := startBenchChromium(ctx, env.TmpDir)
	if err != nil {
		return nil, err
	}
	defer stopBrowser()

	runs := max(env.Runs, 1)
	targets := []*widgetServer{widgetSrv, bareSrv}
	times := map[*widgetServer][]float64{}
	var phases []loadTiming // the widget's, to say where its time goes
	// One unrecorded load each starts Chromium's network and renderer
	// machinery and the servers' first-request paths; every measured load
	// after it is still cold for the page (new BrowserContext).
	for _, s := range targets {
		if _, err := coldFirstVisible(browser, s.pageURL(), meterSelector, firstMeterTimeout); err != nil {
			return nil, fmt.Errorf("bench: warm-up of the %s page: %w", s.name, err)
		}
	}
	for i := range runs {
		// ABBA order: a drift in machine load hits both sides alike.
		order := targets
		if i%2 == 1 {
			order = []*widgetServer{bareSrv, widgetSrv}
		}
		for _, s := range order {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			lt, err := coldFirstVisible(browser, s.pageURL(), meterSelector, firstMeterTimeout)
			if err != nil {
				return nil, fmt.Errorf("bench: %s page, run %d: %w", s.name, i+1, err)
			}
			env.Logf("widget: %s run %d: first meter at %.0f ms (app.wasm downloaded at %.0f ms, data asked at %.0f ms, answered at %.0f ms)",
				s.name, i+1, lt.Meter, lt.WasmEnd, lt.APIStart, lt.APIEnd)
			times[s] = append(times[s], lt.Meter)
			if s == widgetSrv {
				phases = append(phases, lt)
			}
		}
	}
	rm, bm := median(times[widgetSrv]), median(times[bareSrv])
	phase := func(f func(loadTiming) float64) float64 {
		var v []float64
		for _, p := range phases {
			v = append(v, f(p))
		}
		return median(v)
	}
	return []Row{
		{
			Name:     fmt.Sprintf("time to first meter (median of %d cold loads)", runs),
			Value:    fmt.Sprintf("%.0f ms", rm),
			Baseline: fmt.Sprintf("%.0f ms", bm),
			Ratio:    ratio(rm, bm),
			Budget:   fmt.Sprintf("<= %.1fx bare", widgetBudget),
			Met:      check(bm > 0 && rm/bm <= widgetBudget),
			Note: fmt.Sprintf("min-max: widget %.0f-%.0f ms, bare %.0f-%.0f ms; headless Chromium, new BrowserContext per load",
				slices.Min(times[widgetSrv]), slices.Max(times[widgetSrv]), slices.Min(times[bareSrv]), slices.Max(times[bareSrv])),
		},
		{
			Name: "widget load phases (median)",
			Value: fmt.Sprintf("wasm %.0f ms, ask %.0f ms, data %.0f ms, meter %.0f ms",
				phase(func(l loadTiming) float64 { return l.WasmEnd }), phase(func(l loadTiming) float64 { return l.APIStart }),
				phase(func(l loadTiming) float64 { return l.APIEnd }), rm),
			Note: "ms since navigation: app.wasm downloaded; the data request started (by web/prefetch.js, while app.wasm loads) and was answered; first meter visible",
		},
		{
			Name:  "first-meter baseline",
			Value: "same usage-server, bare app.wasm",
			Note: "the bare page is bin/usage-server with --web-dir holding bench/bareapp's app.wasm(.br/.gz) and copies of web/'s icons and CSS: " +
				"same HTML, go-app scripts, service worker, headers and brotli serving, so only app.wasm differs. " +
				"Its pre-rendered HTML is the widget's loading state, which has no li.meter (checked), so the bare meter appears only when the bare wasm renders it; " +
				"a separate go-app handler would differ in HTML and assets too",
		},
	}, nil
}

// widgetServer is one usage-server process (proc.go) with its own empty
// store and keys.
type widgetServer struct {
	*benchProc
	writeKey, readToken string
}

// startWidgetServer runs usage-server for one of the two pages. The widget
// timings are the server's defaults.
func startWidgetServer(ctx context.Context, env *Env, name, webDir string) (*widgetServer, error) {
	data := filepath.Join(env.TmpDir, "widget-"+name+"-data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	s := &widgetServer{writeKey: benchSecret(), readToken: benchSecret()}
	p, err := startUsageServer(ctx, env, name, data, webDir, s.writeKey, s.readToken)
	if err != nil {
		return nil, err
	}
	s.benchProc = p
	return s, nil
}

// pageURL passes the read token the way a user does (e2e/widget too): in
// the fragment, which the widget stores and removes.
func (s *widgetServer) pageURL() string { return s.url() + "/#token=" + s.readToken }

// postSnapshot stores the three meters the e2e tests use.
func (s *widgetServer) postSnapshot(ctx context.Context) error {
	now := time.Now().UTC()
	type meter struct {
		ID          string    `json:"id"`
		Label       string    `json:"label"`
		PercentUsed float64   `json:"percentUsed"`
		ResetsAt    time.Time `json:"resetsAt"`
	}
	body, err := json.Marshal(map[string]any{
		"account": "default", "scrapedAt": now.Add(-time.Minute).Format(time.RFC3339), "capture": "api",
		"meters": []meter{
			{"session", "Current session", 42, now.Add(2 * time.Hour)},
			{"weekly_all", "All models", 78, now.Add(5 * 24 * time.Hour)},
			{"weekly_opus", "Opus only", 93, now.Add(5 * 24 * time.Hour)},
		},
	})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url()+"/api/claude/console-usage", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", s.writeKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("bench: posting a snapshot to the %s server: %w", s.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("bench: posting a snapshot to the %s server: %s: %s", s.name, resp.Status, b)
	}
	return nil
}

// checkFair makes sure the measurement includes the wasm: the pre-rendered
// page must not contain a meter already, and app.wasm must go out brotli
// on both servers.
func (s *widgetServer) checkFair(ctx context.Context) error {
	get := func(path string) (*http.Response, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url()+path, nil)
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Accept-Encoding", "br, gzip")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	resp, page, err := get("/")
	if err != nil {
		return fmt.Errorf("bench: GET / on the %s server: %w", s.name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: GET / on the %s server: %s", s.name, resp.Status)
	}
	if bytes.Contains(page, []byte(`class="meter"`)) {
		return fmt.Errorf("bench: the %s server pre-renders a meter: the time to first meter would not include the wasm", s.name)
	}
	resp, _, err = get("/web/app.wasm")
	if err != nil {
		return fmt.Errorf("bench: GET /web/app.wasm on the %s server: %w", s.name, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "br" {
		return fmt.Errorf("bench: the %s server sends app.wasm as %s, encoding %q; want 200 br (run `make wasm`)",
			s.name, resp.Status, resp.Header.Get("Content-Encoding"))
	}
	return nil
}
