package parse

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/claude-usage/widget/scraper/scrapeerr"
)

var (
	challengeMarks = []string{
		"just a moment",
		"verify you are human",
		"checking your browser",
		"checking if the site connection is secure",
		"attention required! | cloudflare",
		"performance & security by cloudflare",
		"enable javascript and cookies to continue",
		// Markup, for callers that pass the page's HTML: it is the same in
		// every language the interstitial speaks.
		"_cf_chl_opt",
		"/cdn-cgi/challenge-platform/",
		"cf-challenge",
	}
	loginMarks = []string{"log in", "login", "sign in", "continue with google", "continue with email"}
	meterMark  = regexp.MustCompile(`(?i)\d+(?:[.,]\d+)?\s*%\s*used`)
)

// DetectPage classifies what the browser ended up on. It returns "" for a
// page that may hold meters. A challenge is checked first: Cloudflare's
// interstitial often also says "log in" nowhere and "verify" everywhere,
// and reporting it as signed out would send the user to log in for nothing.
func DetectPage(pageURL, title, text string) scrapeerr.Class {
	lt, lx := strings.ToLower(title), strings.ToLower(text)
	u, _ := url.Parse(pageURL)
	var path string
	if u != nil {
		path = strings.ToLower(u.Path)
		if strings.Contains(strings.ToLower(u.RawQuery), "__cf_chl") || strings.HasPrefix(path, "/cdn-cgi/challenge-platform") {
			return scrapeerr.Challenge
		}
	}
	for _, m := range challengeMarks {
		if strings.Contains(lt, m) || strings.Contains(lx, m) {
			return scrapeerr.Challenge
		}
	}
	for _, p := range []string{"/login", "/auth", "/signin", "/sign-in", "/oauth"} {
		if path == p || strings.HasPrefix(path, p+"/") || strings.HasPrefix(path, p+"?") {
			return scrapeerr.NotLoggedIn
		}
	}
	if meterMark.MatchString(text) {
		return ""
	}
	for _, m := range loginMarks {
		if strings.Contains(lt, m) || strings.Contains(lx, m) {
			return scrapeerr.NotLoggedIn
		}
	}
	return ""
}
