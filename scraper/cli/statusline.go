package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/claude-usage/widget/internal/config"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/scraper/statusline"
	"github.com/claude-usage/widget/shared"
)

// statusline runs after every message of Claude Code, so it registers only
// the flags it reads and checks nothing else: no key, no browser, no
// server, no network.
func statuslineFlags(f *config.Set, c *settings, p paths) {
	f.String(&c.OutboxDir, "outbox-dir", "USAGE_OUTBOX_DIR", filepath.Join(p.dataDir, "outbox"), "durable queue of unsent snapshots (and the status file)")
	f.String(&c.Account, "account", "USAGE_ACCOUNT", shared.DefaultAccount, "account name written into every snapshot")
	f.String(&c.LogLevel, "log-level", "USAGE_LOG_LEVEL", "warn", "log level: debug, info, warn, error")
	f.String(&c.LogFormat, "log-format", "USAGE_LOG_FORMAT", config.FormatAuto, "log format: auto (text on a terminal, JSON otherwise), json, text")
}

func checkStatusline(c *settings) error {
	if !shared.AccountPattern.MatchString(c.Account) {
		return usagef("--account %q must match %s", c.Account, shared.AccountPattern)
	}
	if c.OutboxDir == "" {
		return usagef("--outbox-dir must not be empty")
	}
	if _, err := config.ParseLevel(c.LogLevel); err != nil {
		return usagef("%v", err)
	}
	if _, err := config.ParseFormat(c.LogFormat); err != nil {
		return usagef("%v", err)
	}
	return nil
}

// cmdStatusline always prints a line and exits 0: Claude Code shows
// whatever the command prints, and a failure here must not blank the
// user's status line. Problems go to stderr.
func cmdStatusline(e *cmdEnv) int {
	now := time.Now()
	rd, err := statusline.Read(e.stdin, now)
	if err != nil {
		fmt.Fprintln(e.stdout, "usage: unreadable statusline input")
		e.log.Warn("statusline input not read", "component", "statusline", "error", err.Error())
		return scrapeerr.ExitOK
	}
	fmt.Fprintln(e.stdout, statusline.Line(rd.Snapshot, now, time.Local))
	if len(rd.Problems) > 0 {
		e.log.Warn("statusline fields not read", "component", "statusline", "problems", strings.Join(rd.Problems, "; "))
	}
	snap := rd.Snapshot
	snap.Account = e.cfg.Account
	if verr := snap.Validate(now); len(snap.Meters) > 0 && verr != nil {
		e.log.Warn("statusline snapshot fails validation; not queued", "component", "statusline", "error", verr.Error())
		return scrapeerr.ExitOK
	}
	q, err := statusline.Queue(e.cfg.OutboxDir, snap, now, e.log)
	if err != nil {
		e.log.Warn("statusline snapshot not queued", "component", "statusline", "outbox", e.cfg.OutboxDir, "error", err.Error())
		return scrapeerr.ExitOK
	}
	e.log.Debug("statusline", "component", "statusline", "outcome", q.String())
	return scrapeerr.ExitOK
}
