package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/claude-usage/widget/scraper/browser"
	"github.com/claude-usage/widget/scraper/oauth"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/scraper/source"
	"github.com/claude-usage/widget/shared"
)

// check is one line of the doctor's report.
type check struct {
	name   string
	ok     bool
	detail string
	fix    string // what to do; empty when ok
	// blocks: this problem stops scraping (or syncing) altogether.
	blocks bool
}

// cmdDoctor checks what each source needs and the server, prints one line
// per check with what to do about a problem, and exits 1 when a problem
// stops the scraper from scraping or syncing.
func cmdDoctor(e *cmdEnv) int {
	var checks []check
	now := time.Now()

	creds, cerr := e.locator().Load(e.ctx)
	oauthOK := cerr == nil && !creds.Expired(now)
	c := check{name: "Claude Code login (oauth)"}
	switch {
	case oauthOK:
		c.ok = true
		c.detail = "found in " + creds.From
		if !creds.ExpiresAt.IsZero() {
			c.detail += fmt.Sprintf(", valid until %s", creds.ExpiresAt.Local().Format("2006-01-02 15:04"))
		}
	case cerr == nil:
		c.detail = fmt.Sprintf("in %s, expired at %s", creds.From, creds.ExpiresAt.Local().Format("2006-01-02 15:04"))
		c.fix = oauth.StepExpired
	case errors.Is(cerr, oauth.ErrNoCredentials):
		c.detail = cerr.Error()
		c.fix = oauth.StepMissing
		if e.cfg.Source == source.Auto {
			c.detail += " (auto uses the browser)"
			c.fix = "optional: sign in to Claude Code (`claude`) to scrape without a browser"
		}
	default:
		c.detail = cerr.Error()
		c.fix = "check the file's permissions, or sign in to Claude Code again (`claude`)"
	}
	needBrowser := e.cfg.Source == source.Browser || (e.cfg.Source == source.Auto && !oauthOK)
	c.blocks = !c.ok && e.cfg.Source == source.OAuth
	if e.cfg.Source != source.Browser {
		checks = append(checks, c)
	}

	if e.cfg.Source != source.OAuth {
		path, berr := browser.FindChrome(e.cfg.ChromePath)
		c = check{name: "Chromium", ok: berr == nil, detail: path}
		if berr != nil {
			c.detail, c.fix, c.blocks = berr.Error(), shared.ScrapeBrowser.NextStep(), needBrowser
		}
		checks = append(checks, c)
		checks = append(checks, profileCheck(e.cfg.ProfileDir, needBrowser))
	}
	checks = append(checks, e.serverCheck())

	code := scrapeerr.ExitOK
	for _, c := range checks {
		mark := "ok     "
		switch {
		case c.ok:
		case c.blocks:
			mark, code = "PROBLEM", scrapeerr.ExitOther
		default:
			mark = "note   "
		}
		fmt.Fprintf(e.stdout, "%s  %-26s %s\n", mark, c.name, c.detail)
		if !c.ok && c.fix != "" {
			fmt.Fprintf(e.stdout, "         %-26s → %s\n", "", c.fix)
		}
	}
	if code != scrapeerr.ExitOK {
		fmt.Fprintln(e.stdout, "the scraper cannot work until the PROBLEM lines are fixed")
	}
	return code
}

// profileCheck looks at the profile without starting Chromium: whether a
// login was ever made in it and whether a running Chromium holds it.
// Whether that login is still valid shows only on a scrape (`once
// --dry-run`).
func profileCheck(dir string, needed bool) check {
	c := check{name: "Chromium profile"}
	if _, err := os.Stat(dir); err != nil {
		c.detail = dir + " does not exist: never signed in"
		c.fix, c.blocks = "run `usage-scraper login`", needed
		return c
	}
	if _, err := os.Stat(filepath.Join(dir, "Default", "Cookies")); err != nil {
		c.detail = dir + " holds no cookies: not signed in yet"
		c.fix, c.blocks = "run `usage-scraper login`", needed
		return c
	}
	c.ok = true
	c.detail = dir + " has a login (whether it is still valid shows in `usage-scraper once --dry-run`)"
	if pid, held := browser.LockHolder(dir); held {
		c.detail += fmt.Sprintf("; in use by Chromium pid %d (--keep-browser or a scrape running)", pid)
	}
	return c
}

// serverCheck reads the latest snapshot with the write key (the server
// accepts it for reading): nothing is written, and the answer tells
// apart an unreachable server, a refused key and a working one.
func (e *cmdEnv) serverCheck() check {
	c := check{name: "usage-server", blocks: true}
	key, err := e.cfg.key()
	if err != nil {
		c.detail, c.fix = "no write key", "set --api-key-file (or USAGE_API_KEY_FILE) to the file holding the server's write key"
		return c
	}
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	u := strings.TrimRight(e.cfg.Server, "/") + shared.PathUsage
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		c.detail = err.Error()
		return c
	}
	req.Header.Set(shared.HeaderAPIKey, key)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.detail, c.fix = fmt.Sprintf("%s is not reachable: %v", e.cfg.Server, err), "check --server and that usage-server runs"
		return c
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb struct {
		ErrorCode   string `json:"errorCode"`
		Message     string `json:"message"`
		VersionInfo *struct {
			Total int `json:"total"`
		} `json:"versionInfo"`
	}
	_ = json.Unmarshal(body, &eb)
	switch {
	case resp.StatusCode == http.StatusOK && eb.VersionInfo != nil && eb.VersionInfo.Total > 0:
		c.ok, c.detail = true, e.cfg.Server+" answers and accepts the key"
	case resp.StatusCode == http.StatusNotFound && eb.ErrorCode == "NO_DATA":
		c.ok, c.detail = true, e.cfg.Server+" answers and accepts the key (no snapshot stored yet)"
	case resp.StatusCode == http.StatusUnauthorized && eb.ErrorCode != "":
		c.detail = fmt.Sprintf("%s refused the key: %s %s", e.cfg.Server, eb.ErrorCode, eb.Message)
		c.fix = "put the server's write key (its --api-key-file) into the file --api-key-file names"
	case eb.ErrorCode == "":
		c.detail = fmt.Sprintf("%s answered HTTP %d, not like a usage-server", e.cfg.Server, resp.StatusCode)
		c.fix = "check --server: it must be the usage-server's base URL"
	default:
		c.detail = fmt.Sprintf("%s answered HTTP %d %s: %s", e.cfg.Server, resp.StatusCode, eb.ErrorCode, eb.Message)
		c.fix = "see the server's log"
	}
	return c
}
