/*
Package cli is the usage-scraper command: run, once, login, status,
statusline, doctor, install-launchd and install-systemd. Run returns the exit code, so the main
package stays a few lines long and tests drive the real command.

# Setup on a Mac

	make build                      # bin/usage-scraper
	mkdir -p ~/Library/Application\ Support/usage-scraper
	(umask 077; printf '%s' "$KEY" > ~/Library/Application\ Support/usage-scraper/api-key)
	bin/usage-scraper login         # a Chromium window opens: sign in to claude.ai there
	bin/usage-scraper once --dry-run  # prints the snapshot JSON, posts nothing
	bin/usage-scraper install-launchd --server https://usage.example.com \
	    --api-key-file ~/Library/Application\ Support/usage-scraper/api-key
	launchctl bootstrap gui/$(id -u) ~/Library/LaunchAgents/com.claude-usage.scraper.plist
	tail -f ~/Library/Logs/usage-scraper/usage-scraper.log
	bin/usage-scraper status        # outbox, last success, last error, sync statistics

The plist holds the server URL (USAGE_SERVER_URL) and the path of the key
file, never the key. Chromium allows one process per profile: stop the
LaunchAgent (launchctl bootout gui/$(id -u)/com.claude-usage.scraper) before
running login or once by hand, or give those a different --profile-dir. On Linux, install-systemd writes a user unit instead
(logs: journalctl --user -u usage-scraper -f).

# Where things are

  - profile (the claude.ai login): --profile-dir, default
    ~/Library/Application Support/usage-scraper/chromium-profile (Linux:
    ~/.config/usage-scraper/chromium-profile)
  - outbox (unsent snapshots, oldest first): --outbox-dir, default
    ~/Library/Application Support/usage-scraper/outbox (Linux:
    ~/.local/share/usage-scraper/outbox); rejected/ holds snapshots the
    server refused (with a .reason file), corrupt/ files that did not parse,
    state/sync-state.json the statistics that `status` shows.

# Troubleshooting by failure class (exit code of once)

  - NOT_LOGGED_IN (3): the profile lost its claude.ai session. Run
    `usage-scraper login` (stop the LaunchAgent first: one Chromium per
    profile).
  - CHALLENGE (4): claude.ai showed a "Just a moment…" browser check. Run
    `usage-scraper login` once and pass the check in the window.
  - LAYOUT_CHANGED (5): no meter could be read; the page changed. Update
    the scraper; `once --dry-run --log-level debug` shows what was found.
  - BROWSER (6): Chromium is missing or crashed. Install Chrome or
    Chromium, or pass --chrome-path. `run` starts a new browser by itself
    after a crash.
  - NETWORK (7): claude.ai could not be reached. Check the connection.
  - 1 with "sync failed": the server was unreachable or refused the
    snapshot; it stays in the outbox and is sent later. AUTH means the key
    does not match the server's --api-key; NOT_FOUND means --server is not
    the usage-server's base URL; "does not answer like a usage-server"
    means something else answers there (a captive portal, a proxy): only
    the usage-server's own answers deliver or reject a snapshot.

Repeated scrape failures back off (1, 2, 4, … up to 12 cycles) and open a
breaker after 3 in a row (one probe every 30 min), so a signed-out scraper
does not hammer claude.ai; each outcome is reported to the server, so the
widget and /api/health say why data stopped. SYNC_VERBOSE=1 logs every
request and response (never the key).
*/
package cli
