//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"github.com/claude-usage/widget/scraper/browser"
	"github.com/claude-usage/widget/scraper/fakeclaude"
	"github.com/claude-usage/widget/shared"
)

// The scraper section times the repo's own browser package against the
// embedded fixture site: a cold scrape starts Chromium on a fresh profile,
// scrapes once and stops it; a warm scrape is what --keep-browser does
// every interval, on a browser that is already up and a tab it reuses.
// The default mode starts Chromium on the kept profile for every scrape
// and closes it: its rows (scraperdaemon.go) run the real usage-scraper
// binary in both modes and measure it between scrapes.
func init() { register("scraper", 60, runScraperBench) }

const (
	scraperStartTimeout  = 60 * time.Second
	scraperScrapeTimeout = 30 * time.Second
)

// scraperCold is one cold scrape split into its phases.
type scraperCold struct{ start, scrape, stop, total time.Duration }

func runScraperBench(ctx context.Context, env *Env) ([]Row, error) {
	runs := max(env.Runs, 1)
	base, stopSite, err := scraperServeFixture()
	if err != nil {
		return nil, err
	}
	defer stopSite()
	url := fakeclaude.UsageURL(base, fakeclaude.VariantLegacy)
	opts := browser.Options{Headless: true, PageTimeout: scraperScrapeTimeout}

	warm, err := scraperNewBrowser(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer warm.Close()
	// The daemon's first scrape after start-up is not a warm one; what it
	// repeats every interval is the second and later.
	if _, err := scraperScrape(ctx, warm, url); err != nil {
		return nil, fmt.Errorf("bench: warm-up scrape: %w", err)
	}
	tab := warm.TargetID()

	var colds []scraperCold
	var warms []time.Duration
	for i := range runs {
		// Alternating the order spreads any drift of a busy machine over
		// both kinds evenly.
		for _, cold := range []bool{i%2 == 0, i%2 != 0} {
			if cold {
				c, err := scraperColdOnce(ctx, opts, url)
				if err != nil {
					return nil, err
				}
				colds = append(colds, c)
				env.Logf("scraper: cold %d/%d: %s (start %s, scrape %s, stop %s)", i+1, runs,
					c.total.Round(time.Millisecond), c.start.Round(time.Millisecond),
					c.scrape.Round(time.Millisecond), c.stop.Round(time.Millisecond))
				continue
			}
			t0 := time.Now()
			if _, err := scraperScrape(ctx, warm, url); err != nil {
				return nil, fmt.Errorf("bench: warm scrape: %w", err)
			}
			d := time.Since(t0)
			if got := warm.TargetID(); got != tab {
				return nil, fmt.Errorf("bench: warm scrape opened a new tab (%s, was %s)", got, tab)
			}
			warms = append(warms, d)
			env.Logf("scraper: warm %d/%d: %s", i+1, runs, d.Round(time.Millisecond))
		}
	}

	coldTotals := make([]time.Duration, len(colds))
	var starts, scrapes, stops []time.Duration
	for i, c := range colds {
		coldTotals[i] = c.total
		starts, scrapes, stops = append(starts, c.start), append(scrapes, c.scrape), append(stops, c.stop)
	}
	wMed, cMed := median(warms), median(coldTotals)
	speedup := float64(cMed) / float64(wMed)
	rows := []Row{{
		Name:     "scrape warm vs cold",
		Value:    scraperMS(wMed),
		Baseline: scraperMS(cMed),
		Ratio:    fmt.Sprintf("%.2fx faster", speedup),
		Budget:   ">= 3x faster",
		Met:      check(speedup >= 3),
		Note: fmt.Sprintf("median of %d; warm min/max %s/%s, one reused tab; cold min/max %s/%s = start %s + scrape %s + stop %s (medians), fresh profile each",
			runs, scraperMS(slices.Min(warms)), scraperMS(slices.Max(warms)),
			scraperMS(slices.Min(coldTotals)), scraperMS(slices.Max(coldTotals)),
			scraperMS(median(starts)), scraperMS(median(scrapes)), scraperMS(median(stops))),
	}}

	p := warm.Process()
	if p == nil {
		return rows, errors.New("bench: the warm browser has no process")
	}
	m, err := chromeTreeMem(p.Pid)
	if err != nil {
		return rows, err
	}
	note := fmt.Sprintf("RSS sum %s, %d processes (browser pid %d and descendants), after %d scrapes in one tab; RSS counts shared pages once per process, PSS splits them (also with any other Chromium running)",
		memMB(m.RSSKB), m.Procs, p.Pid, runs+1)
	if m.NoPSS > 0 {
		note += fmt.Sprintf("; PSS unreadable for %d processes", m.NoPSS)
	}
	rows = append(rows, Row{
		Name:  "chromium memory, warm",
		Value: "PSS " + memMB(m.PSSKB),
		Note:  note,
	})
	kept, err := scraperKeptProfile(ctx, env, opts, url, runs, wMed)
	if err != nil {
		return rows, err
	}
	rows = append(rows, kept)
	daemon, err := scraperDaemonRows(ctx, env, url)
	rows = append(rows, daemon...)
	if err != nil {
		return rows, err
	}
	sl, err := statuslineRow(ctx, env)
	if err != nil {
		return rows, err
	}
	return append(rows, sl), nil
}

// scraperKeptProfile is the default mode's scrape as the scraper does it:
// Chromium started on the profile kept from the last scrape (its cache and
// cookies on disk), one scrape, Chromium closed.
func scraperKeptProfile(ctx context.Context, env *Env, opts browser.Options, url string, runs int, warm time.Duration) (Row, error) {
	opts.ProfileDir = filepath.Join(env.TmpDir, "kept-profile")
	var totals []time.Duration
	for i := range runs + 1 {
		t0 := time.Now()
		b, err := scraperNewBrowser(ctx, opts)
		if err != nil {
			return Row{}, err
		}
		_, serr := scraperScrape(ctx, b, url)
		cerr := b.Close()
		if serr != nil || cerr != nil {
			return Row{}, fmt.Errorf("bench: kept-profile scrape: %v %v", serr, cerr)
		}
		if i > 0 { // the first one creates the profile
			totals = append(totals, time.Since(t0))
			env.Logf("scraper: kept-profile cold %d/%d: %s", i, runs, totals[len(totals)-1].Round(time.Millisecond))
		}
	}
	med := median(totals)
	return Row{
		Name:     "scrape cold, kept profile (default)",
		Value:    scraperMS(med),
		Baseline: scraperMS(warm),
		Ratio:    ratio(float64(med), float64(warm)) + " warm",
		Budget:   "<= 3000 ms",
		Met:      check(med <= 3*time.Second),
		Note: fmt.Sprintf("median of %d: start Chromium on the profile of the previous scrape, scrape, close; min/max %s/%s; baseline: warm scrape (--keep-browser)",
			runs, scraperMS(slices.Min(totals)), scraperMS(slices.Max(totals))),
	}, nil
}

// scraperColdOnce starts a browser on a fresh temporary profile, scrapes
// once and stops it, removing the profile, as a scraper that launched
// Chromium for every reading would.
func scraperColdOnce(ctx context.Context, opts browser.Options, url string) (scraperCold, error) {
	t0 := time.Now()
	b, err := scraperNewBrowser(ctx, opts)
	if err != nil {
		return scraperCold{}, err
	}
	t1 := time.Now()
	_, serr := scraperScrape(ctx, b, url)
	t2 := time.Now()
	cerr := b.Close()
	t3 := time.Now()
	if serr != nil {
		return scraperCold{}, fmt.Errorf("bench: cold scrape: %w", serr)
	}
	if cerr != nil {
		return scraperCold{}, fmt.Errorf("bench: stop the cold browser: %w", cerr)
	}
	return scraperCold{start: t1.Sub(t0), scrape: t2.Sub(t1), stop: t3.Sub(t2), total: t3.Sub(t0)}, nil
}

func scraperNewBrowser(ctx context.Context, opts browser.Options) (*browser.Browser, error) {
	sctx, cancel := context.WithTimeout(ctx, scraperStartTimeout)
	defer cancel()
	b, err := browser.New(sctx, opts)
	if err != nil {
		return nil, fmt.Errorf("bench: start chromium: %w", err)
	}
	return b, nil
}

// scraperScrape scrapes once and insists on the full reading, so that a
// page that failed fast can never pass for a fast scrape.
func scraperScrape(ctx context.Context, b *browser.Browser, url string) (shared.Snapshot, error) {
	sctx, cancel := context.WithTimeout(ctx, scraperScrapeTimeout)
	defer cancel()
	snap, err := b.Scrape(sctx, url)
	if err != nil {
		return snap, err
	}
	if snap.Partial || len(snap.Meters) < 4 {
		return snap, fmt.Errorf("bench: scrape read %d meters (partial %v), want the fixture's 4", len(snap.Meters), snap.Partial)
	}
	return snap, nil
}

// scraperServeFixture serves the embedded fixture site on loopback until
// the returned stop is called.
func scraperServeFixture() (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("bench: listen for the fixture site: %w", err)
	}
	srv := &http.Server{Handler: fakeclaude.Handler(fakeclaude.Options{}), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l) // ends with ErrServerClosed on Shutdown
	}()
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		<-done
	}
	return "http://" + l.Addr().String(), stop, nil
}

func scraperMS(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}
