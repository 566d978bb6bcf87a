package shared

// ScrapeClass is the outcome of one scrape as the scraper reports it in
// ScraperStatus.Category. The classes live here, not in the scraper,
// because the widget (which must not import the scraper) explains them
// with the same words the scraper logs.
type ScrapeClass string

// The scrape classes. The values are wire values: the scraper sends them
// and the server keeps them, so they never change.
const (
	ScrapeOK            ScrapeClass = "OK"
	ScrapeNotLoggedIn   ScrapeClass = "NOT_LOGGED_IN"
	ScrapeChallenge     ScrapeClass = "CHALLENGE"
	ScrapeLayoutChanged ScrapeClass = "LAYOUT_CHANGED"
	ScrapeBrowser       ScrapeClass = "BROWSER"
	ScrapeNetwork       ScrapeClass = "NETWORK"
	ScrapeUnknown       ScrapeClass = "UNKNOWN"
	// ScrapeRateLimited: the usage source answered 429; the scraper waits.
	ScrapeRateLimited ScrapeClass = "RATE_LIMITED"
	// ScrapeNoDisplay: a visible window (login) was asked for in a session
	// without a display.
	ScrapeNoDisplay ScrapeClass = "NO_DISPLAY"
	// ScrapeProfileInUse: another Chromium (the running agent) holds the
	// profile directory.
	ScrapeProfileInUse ScrapeClass = "PROFILE_IN_USE"
	// ScrapeSnapshotsDropped: snapshots were lost because the laptop could
	// neither store nor send them.
	ScrapeSnapshotsDropped ScrapeClass = "SNAPSHOTS_DROPPED"
	// ScrapeOAuthForbidden: the OAuth usage endpoint refused the login (403).
	ScrapeOAuthForbidden ScrapeClass = "OAUTH_FORBIDDEN"
)

// ScrapeClassPattern is the shape of any category the server accepts in a
// scraper status: the known classes and ones a newer scraper may add.
var ScrapeClassPattern = NewPattern(`^[A-Z][A-Z_]{0,31}$`)

// NextStep is the advice for a failure of this class, shown in the
// scraper's logs and in the widget. Commands are set in backticks; the
// widget renders them as code.
func (c ScrapeClass) NextStep() string {
	switch c {
	case ScrapeNotLoggedIn:
		return "Scraper signed out — run `usage-scraper login`"
	case ScrapeChallenge:
		return "Claude showed a browser check — run `usage-scraper login` once and pass it in the window"
	case ScrapeLayoutChanged:
		return "The usage page changed and no meter could be read — update the scraper"
	case ScrapeBrowser:
		return "Chromium is missing or crashed — install Chrome/Chromium or set --chrome-path"
	case ScrapeNetwork:
		return "The laptop could not reach claude.ai — check the connection"
	case ScrapeRateLimited:
		return "Claude asked the scraper to slow down — it waits and tries again by itself"
	case ScrapeNoDisplay:
		return "No display: run `usage-scraper login` in the Mac's desktop session, not over SSH"
	case ScrapeProfileInUse:
		return "The profile is in use by the running agent — stop it with `launchctl bootout gui/$(id -u)/com.claude-usage.scraper`, run login, then start it again"
	case ScrapeOAuthForbidden:
		return "Anthropic refused this login the usage data — sign in to Claude Code with your Claude subscription (`claude`, then /login), or use --source browser"
	case ScrapeSnapshotsDropped:
		return "The laptop could not store snapshots and some were lost — free disk space and check `usage-scraper status`"
	}
	return "The scrape failed — see the scraper log"
}
