package cli

import (
	"cmp"
	"encoding/json"
	"fmt"
	"time"

	"github.com/claude-usage/widget/scraper/outbox"
	"github.com/claude-usage/widget/scraper/runner"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/scraper/source"
	"github.com/claude-usage/widget/scraper/upload"
)

// syncParts opens the outbox, the statistics and the client.
func (e *cmdEnv) syncParts() (*outbox.Outbox, *upload.Client, error) {
	key, err := e.cfg.key()
	if err != nil {
		return nil, nil, err
	}
	return e.syncPartsWith(key)
}

func (e *cmdEnv) syncPartsWith(key string) (*outbox.Outbox, *upload.Client, error) {
	ob, err := outbox.Open(e.cfg.OutboxDir, outbox.Options{Logger: e.log})
	if err != nil {
		return nil, nil, err
	}
	tr, err := upload.OpenTracker(stateFile(e.cfg.OutboxDir), e.log)
	if err != nil {
		return nil, nil, err
	}
	client := &upload.Client{ServerURL: e.cfg.Server, APIKey: key, Logger: e.log, Verbose: e.cfg.Verbose, Tracker: tr}
	return ob, client, nil
}

func cmdRun(e *cmdEnv) int {
	usageURL := e.cfg.UsageURL
	if e.cfg.Demo {
		u, err := e.d.startDemo(e.ctx, "127.0.0.1:0")
		if err != nil {
			return e.fail(fmt.Errorf("starting the demo usage page: %w", err))
		}
		usageURL = u
		// The demo reads the bundled page only, never a real login.
		e.cfg.Source = source.Browser
		e.log.Info("demo mode: scraping the bundled sample page", "component", "cli", "usageUrl", u)
	}
	ob, client, err := e.syncParts()
	if err != nil {
		return e.fail(err)
	}
	src, br := e.sources(client.Tracker)
	defer br.Close()
	r, err := runner.New(runner.Config{Scraper: src, Outbox: ob, Client: client, UsageURL: usageURL,
		Account: e.cfg.Account, Interval: e.cfg.Interval, Logger: e.log})
	if err != nil {
		return e.fail(err)
	}
	if err := r.Run(e.ctx); err != nil {
		return e.fail(err)
	}
	return scrapeerr.ExitOK
}

func cmdOnce(e *cmdEnv) int {
	if e.cfg.DryRun {
		src, br := e.sources(nil)
		defer br.Close()
		snap, err := src.Scrape(e.ctx, e.cfg.UsageURL)
		if err != nil {
			return e.fail(err)
		}
		snap.Account = e.cfg.Account
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(snap); err != nil {
			return e.fail(fmt.Errorf("writing the snapshot: %w", err))
		}
		return scrapeerr.ExitOK
	}
	ob, client, err := e.syncParts()
	if err != nil {
		return e.fail(err)
	}
	src, br := e.sources(client.Tracker)
	defer br.Close()
	r, err := runner.New(runner.Config{Scraper: src, Outbox: ob, Client: client, UsageURL: e.cfg.UsageURL,
		Account: e.cfg.Account, Interval: e.cfg.Interval, Logger: e.log})
	if err != nil {
		return e.fail(err)
	}
	res := r.Cycle(e.ctx)
	if res.ScrapeErr != nil {
		code := e.fail(res.ScrapeErr)
		if res.Drain.Err != nil {
			fmt.Fprintf(e.stderr, "also: %v\n", res.Drain.Err)
		}
		return code
	}
	if failed := cmp.Or(res.Drain.Err, res.Drain.Failed); failed != nil {
		fmt.Fprintf(e.stderr, "usage-scraper once: sync failed: %v\nthe snapshot is kept in %s and sent by the next run or once (%d waiting)\n",
			failed, ob.Dir(), res.Drain.Remaining)
		return scrapeerr.ExitOther
	}
	fmt.Fprintf(e.stdout, "synced: %d meter(s) scraped at %s; sent %d snapshot(s), %d rejected, %d waiting\n",
		len(res.Snapshot.Meters), res.Snapshot.ScrapedAt.Format(time.RFC3339), res.Drain.Sent, res.Drain.Rejected, res.Drain.Remaining)
	return scrapeerr.ExitOK
}
