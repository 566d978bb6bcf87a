package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/claude-usage/widget/internal/atomicfile"
	"github.com/claude-usage/widget/scraper/parse"
	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
)

// Defaults.
const (
	DefaultBaseURL = "https://api.anthropic.com"
	UsagePath      = "/api/oauth/usage"
	// BetaHeader is the anthropic-beta value the OAuth endpoints need.
	BetaHeader = "oauth-2025-04-20"
	// ClaudeCodeVersion is the version in our User-Agent: the endpoint is
	// Claude Code's, and it is called the way a current Claude Code calls
	// it. Bump it with a Claude Code release when the endpoint asks for it.
	ClaudeCodeVersion = "2.1.0"
	UserAgent         = "claude-code/" + ClaudeCodeVersion
	maxBody           = 1 << 20
	requestTimeout    = 30 * time.Second
)

// Classes of their own for the OAuth source.
const (
	// Forbidden: the endpoint refused the login (403), e.g. a login
	// without the scope for usage or an account without a plan.
	Forbidden = shared.ScrapeOAuthForbidden
)

// Next steps, shown instead of the class's where the fix is in Claude
// Code and not in our browser login.
const (
	StepExpired  = "run claude once to refresh its login"
	StepMissing  = "sign in to Claude Code (run `claude`), or use --source browser"
	StepRejected = "Claude Code's login was rejected — run claude once to sign in again"
	StepServer   = "Anthropic's usage endpoint is failing — the scraper tries again at the next interval"
	StepNetwork  = "The laptop could not reach api.anthropic.com — check the connection"
)

// Client reads the usage once per Scrape. It is safe for concurrent use;
// requests are serialized.
type Client struct {
	BaseURL string // DefaultBaseURL when empty
	HTTP    *http.Client
	// Load returns Claude Code's login; called for every scrape, so a
	// login Claude Code refreshed in between is picked up.
	Load func(ctx context.Context) (Credentials, error)
	// MinGap is the least time between two requests (at most one request
	// per interval); a scrape sooner fails RATE_LIMITED without a request.
	MinGap time.Duration
	// StatePath keeps the last request time and the 429 waits across
	// processes (`once` next to `run`); empty: memory only.
	StatePath string
	Now       func() time.Time
	Logger    *slog.Logger

	mu     sync.Mutex
	loaded bool
	st     state
}

type state struct {
	LastRequest time.Time `json:"lastRequest,omitzero"`
	// Waits maps a token's fingerprint to the end of its 429 wait: a new
	// login (another token) is not held back by the old one's.
	Waits map[string]time.Time `json:"waits,omitempty"`
}

// Fingerprint names a token in the state file without storing it.
func Fingerprint(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:8])
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) log() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger.With("component", "oauth")
}

// Scrape reads the usage; the URL argument (the usage page's) is unused.
// Every failure is a *scrapeerr.Error with its next step.
func (c *Client) Scrape(ctx context.Context, _ string) (shared.Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loadState()
	creds, err := c.Load(ctx)
	if err != nil {
		if errors.Is(err, ErrNoCredentials) {
			return shared.Snapshot{}, scrapeerr.New(scrapeerr.NotLoggedIn, err, "oauth").WithStep(StepMissing)
		}
		return shared.Snapshot{}, scrapeerr.New(scrapeerr.Unknown, err, "oauth: reading Claude Code's login")
	}
	now := c.now()
	if creds.Expired(now) {
		return shared.Snapshot{}, scrapeerr.New(scrapeerr.NotLoggedIn, nil, "oauth: Claude Code's login in %s expired at %s",
			creds.From, creds.ExpiresAt.Format(time.RFC3339)).WithStep(StepExpired)
	}
	fp := Fingerprint(creds.AccessToken)
	if until, ok := c.st.Waits[fp]; ok && now.Before(until) {
		wait := until.Sub(now).Round(time.Second)
		return shared.Snapshot{}, scrapeerr.New(scrapeerr.RateLimited, nil,
			"oauth: the usage endpoint asked us to wait; %s left", wait).WithWait(wait)
	}
	if !c.st.LastRequest.IsZero() && c.MinGap > 0 && now.Sub(c.st.LastRequest) < c.MinGap {
		wait := c.MinGap - now.Sub(c.st.LastRequest)
		return shared.Snapshot{}, scrapeerr.New(scrapeerr.RateLimited, nil,
			"oauth: the usage endpoint was asked %s ago; at most one request per %s", now.Sub(c.st.LastRequest).Round(time.Second), c.MinGap).WithWait(wait)
	}
	c.st.LastRequest = now
	snap, err := c.fetch(ctx, creds, fp)
	c.saveState()
	return snap, err
}

func (c *Client) fetch(ctx context.Context, creds Credentials, fp string) (shared.Snapshot, error) {
	base := strings.TrimRight(c.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, base+UsagePath, nil)
	if err != nil {
		return shared.Snapshot{}, scrapeerr.New(scrapeerr.Unknown, err, "oauth: building the request")
	}
	req.Header.Set("Authorization", "Bearer "+creds.AccessToken)
	req.Header.Set("anthropic-beta", BetaHeader)
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: requestTimeout}
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return shared.Snapshot{}, scrapeerr.New(scrapeerr.Unknown, ctx.Err(), "oauth: canceled")
		}
		return shared.Snapshot{}, scrapeerr.New(scrapeerr.Network, err, "oauth: GET %s", base+UsagePath).WithStep(StepNetwork)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	c.log().Debug("usage endpoint answered", "status", resp.StatusCode, "durationMs", time.Since(start).Milliseconds())
	if err != nil {
		return shared.Snapshot{}, scrapeerr.New(scrapeerr.Network, err, "oauth: reading the answer").WithStep(StepNetwork)
	}
	if len(body) > maxBody {
		return shared.Snapshot{}, scrapeerr.New(scrapeerr.LayoutChanged, nil, "oauth: the answer is larger than %d bytes", maxBody)
	}
	now := c.now()
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests:
		ra, _ := scrapeerr.ParseRetryAfter(resp.Header.Get("Retry-After"), now)
		e := scrapeerr.RateLimitedAfter(ra, "oauth: the usage endpoint")
		if c.st.Waits == nil {
			c.st.Waits = map[string]time.Time{}
		}
		c.st.Waits[fp] = now.Add(e.Wait)
		return shared.Snapshot{}, e
	case code == http.StatusUnauthorized:
		return shared.Snapshot{}, scrapeerr.New(scrapeerr.NotLoggedIn, nil, "oauth: the usage endpoint answered 401 for the login in %s%s",
			creds.From, detail(body)).WithStep(StepRejected)
	case code == http.StatusForbidden:
		return shared.Snapshot{}, scrapeerr.New(Forbidden, nil, "oauth: the usage endpoint answered 403%s", detail(body))
	case code >= 500:
		return shared.Snapshot{}, scrapeerr.New(scrapeerr.Network, nil, "oauth: the usage endpoint answered %d%s", code, detail(body)).WithStep(StepServer)
	case code != http.StatusOK:
		return shared.Snapshot{}, scrapeerr.New(scrapeerr.Unknown, nil, "oauth: the usage endpoint answered %d%s", code, detail(body))
	}
	delete(c.st.Waits, fp)
	return parse.ParseOAuth(body, now)
}

// detail is the message of an Anthropic error body, if it has one.
func detail(body []byte) string {
	var v struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &v) != nil || v.Error.Message == "" {
		return ""
	}
	m := shared.CleanText(v.Error.Message)
	if len(m) > 200 {
		m = m[:200] + "…"
	}
	return ": " + m
}

func (c *Client) loadState() {
	if c.loaded || c.StatePath == "" {
		c.loaded = true
		return
	}
	c.loaded = true
	raw, err := os.ReadFile(c.StatePath)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			c.log().Warn("oauth state unreadable; starting fresh", "file", c.StatePath, "error", err.Error())
		}
		return
	}
	if err := json.Unmarshal(raw, &c.st); err != nil {
		c.log().Warn("oauth state does not parse; starting fresh", "file", c.StatePath, "error", err.Error())
		c.st = state{}
	}
}

func (c *Client) saveState() {
	if c.StatePath == "" {
		return
	}
	now := c.now()
	for fp, until := range c.st.Waits {
		if !now.Before(until) {
			delete(c.st.Waits, fp)
		}
	}
	raw, err := json.Marshal(c.st)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(c.StatePath), 0o700)
	}
	if err == nil {
		err = atomicfile.Write(c.StatePath, raw, 0o600)
	}
	if err != nil {
		c.log().Warn("oauth state not saved", "file", c.StatePath, "error", fmt.Sprint(err))
	}
}
