package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/server/widgetmount"
	"github.com/claude-usage/widget/shared"
)

// Times the server cannot encode or that no scraper can mean are a 400
// naming the field, never a 500, and nothing of such a snapshot stays: the
// account still answers with what it had, and health stays up.
func TestTimesOutsideTheYears2000To9999(t *testing.T) {
	t.Parallel()
	meter := func(resetsAt string) string {
		return `{"account":"default","scrapedAt":"2026-11-28T13:40:00Z","capture":"api","meters":[` +
			`{"id":"weekly_all","label":"All models","percentUsed":1},` +
			`{"id":"session","label":"S","percentUsed":1,"resetsAt":"` + resetsAt + `"}]}`
	}
	scraped := func(at string) string {
		return `{"account":"default","scrapedAt":"` + at + `","capture":"api","meters":[{"id":"session","label":"S","percentUsed":1}]}`
	}
	tests := []struct {
		name, body, field string
	}{
		{"resetsAt past 9999 once in UTC", meter("9999-12-31T23:30:00-01:00"), "meters[1].resetsAt"},
		{"resetsAt in year 1", meter("0001-01-01T00:00:00Z"), "meters[1].resetsAt"},
		{"resetsAt in 1999", meter("1999-12-31T23:59:59Z"), "meters[1].resetsAt"},
		{"scrapedAt before 2000 once in UTC", scraped("2000-01-01T00:30:00+01:00"), "scrapedAt"},
		{"scrapedAt in 1970", scraped("1970-01-01T00:00:00Z"), "scrapedAt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			first := e.mustPost(snap("default", t0.Add(-time.Minute), 10))
			eb := wantError(t, e.post(tt.body), http.StatusBadRequest, shared.CodeValidationFailed)
			if eb.Field != tt.field {
				t.Errorf("field = %q, want %q (message %q)", eb.Field, tt.field, eb.Message)
			}
			if got := e.st.Count("default"); got != 1 {
				t.Errorf("versions = %d after the refused POST, want 1", got)
			}
			var u shared.UsageResponse
			r := e.get(shared.PathUsage)
			r.decode(t, &u)
			if r.status != http.StatusOK || u.VersionInfo.ID != first.ID {
				t.Errorf("GET after the refused POST = %d %s", r.status, r.body)
			}
			if r := e.do(http.MethodGet, shared.PathHealth, ""); r.status != http.StatusOK {
				t.Errorf("health after the refused POST = %d %s", r.status, r.body)
			}
		})
	}
}

func TestQueryTimesOutsideTheYears2000To9999(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustPost(snap("default", t0.Add(-time.Minute), 10))
	tests := []struct{ name, target, field string }{
		{"timestamp past 9999 in UTC", shared.PathUsage + "?timestamp=" + neturl.QueryEscape("9999-12-31T23:00:00-02:00"), "timestamp"},
		{"timestamp in year 1", shared.PathUsage + "?timestamp=0001-01-01T00:00:00Z", "timestamp"},
		{"since in 1900", shared.PathHistory + "?since=1900-01-01T00:00:00Z", "since"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eb := wantError(t, e.get(tt.target), http.StatusBadRequest, shared.CodeInvalidQuery)
			if eb.Field != tt.field {
				t.Errorf("field = %q, want %q", eb.Field, tt.field)
			}
		})
	}
}

// proxied makes app.Test's connection (from 0.0.0.0) a trusted proxy, so
// that X-Forwarded-For picks the client address.
func proxied(c *Config) { c.TrustedProxies = []string{"0.0.0.0"} }

// Failed authentication is limited per client address on every route,
// whatever each guess carries: after 10 failures in a minute even the
// right key is 429 until the minute has passed; other addresses are not
// affected.
func TestFailedAuthIsLimitedPerAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(proxied), withConfig(func(c *Config) { c.MetricsToken = "metrics-token-0123456789" }))
	e.mustPost(snap("default", t0.Add(-time.Minute), 1))
	from := func(ip string, hdr ...string) []string { return append([]string{"X-Forwarded-For", ip}, hdr...) }
	attacker := "203.0.113.7"
	// Ten different guesses on three routes, each a 401.
	for i := range 10 {
		var r resp
		switch i % 3 {
		case 0:
			r = e.get(shared.PathUsage, from(attacker, "Authorization", fmt.Sprintf("Bearer guess-%d", i))...)
		case 1:
			r = e.do(http.MethodPost, shared.PathUsage, snap("default", t0, 1),
				from(attacker, "Content-Type", "application/json", shared.HeaderAPIKey, fmt.Sprintf("guess-%d", i))...)
		case 2:
			r = e.do(http.MethodGet, shared.PathMetrics, "", from(attacker, "Authorization", fmt.Sprintf("Bearer guess-%d", i))...)
		}
		wantError(t, r, http.StatusUnauthorized, shared.CodeAuthInvalidKey)
	}
	limited := []struct {
		name string
		r    func() resp
	}{
		{"another guess", func() resp { return e.get(shared.PathUsage, from(attacker, "Authorization", "Bearer guess-11")...) }},
		{"no key at all", func() resp { return e.get(shared.PathHistory, from(attacker)...) }},
		{"the right read token", func() resp { return e.get(shared.PathUsage, from(attacker)...) }},
		{"the right write key", func() resp {
			return e.do(http.MethodPost, shared.PathScraperStatus, `{"at":"2026-11-28T13:50:00Z","ok":true}`,
				from(attacker, "Content-Type", "application/json", shared.HeaderAPIKey, testKey)...)
		}},
		{"metrics", func() resp {
			return e.do(http.MethodGet, shared.PathMetrics, "", from(attacker, "Authorization", "Bearer metrics-token-0123456789")...)
		}},
		// A client that writes its own X-Forwarded-For entry in front of
		// the proxy's gains nothing: the proxy's entry counts.
		{"spoofed leftmost entry", func() resp {
			return e.get(shared.PathUsage, from("198.51.100.1, "+attacker, "Authorization", "Bearer guess-12")...)
		}},
	}
	for _, l := range limited {
		t.Run(l.name, func(t *testing.T) {
			r := l.r()
			wantError(t, r, http.StatusTooManyRequests, shared.CodeRateLimited)
			if got := r.header.Get("Retry-After"); got != "60" {
				t.Errorf("Retry-After = %q, want 60 (the window started at the first failure)", got)
			}
		})
	}
	// The GET with the right token from elsewhere still works; so does an
	// unauthenticated route from the attacker.
	if r := e.get(shared.PathUsage, from("198.51.100.2")...); r.status != http.StatusOK {
		t.Errorf("GET from another address = %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodGet, shared.PathHealth, "", from(attacker)...); r.status != http.StatusOK {
		t.Errorf("health from the limited address = %d", r.status)
	}

	e.clock.Advance(45 * time.Second)
	r := e.get(shared.PathUsage, from(attacker)...)
	wantError(t, r, http.StatusTooManyRequests, shared.CodeRateLimited)
	if got := r.header.Get("Retry-After"); got != "15" {
		t.Errorf("Retry-After 45 s into the window = %q, want 15", got)
	}
	e.clock.Advance(15 * time.Second)
	if r := e.get(shared.PathUsage, from(attacker)...); r.status != http.StatusOK {
		t.Errorf("right token after the window = %d %s", r.status, r.body)
	}
	wantError(t, e.get(shared.PathUsage, from(attacker, "Authorization", "Bearer guess-13")...), http.StatusUnauthorized, shared.CodeAuthInvalidKey)

	for series, want := range map[string]float64{"usage_auth_failures_total": 11, "usage_auth_limited_total": 7} {
		if got := metricValue(t, e, series, "X-Forwarded-For", "198.51.100.3", "Authorization", "Bearer metrics-token-0123456789"); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

// Health's optional token is no way around the limit: wrong guesses there
// count like anywhere else, while public health stays open.
func TestHealthTokenGuessesAreLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(proxied))
	from := func(ip string, hdr ...string) []string { return append([]string{"X-Forwarded-For", ip}, hdr...) }
	attacker := "203.0.113.9"
	for i := range 10 {
		r := e.do(http.MethodGet, shared.PathHealth, "", from(attacker, "Authorization", fmt.Sprintf("Bearer guess-%d", i))...)
		wantError(t, r, http.StatusUnauthorized, shared.CodeAuthInvalidKey)
	}
	r := e.do(http.MethodGet, shared.PathHealth, "", from(attacker, "Authorization", "Bearer "+testToken)...)
	wantError(t, r, http.StatusTooManyRequests, shared.CodeRateLimited)
	if r := e.get(shared.PathUsage, from(attacker)...); r.status != http.StatusTooManyRequests {
		t.Errorf("GET usage after 10 health guesses = %d, want 429", r.status)
	}
	if r := e.do(http.MethodGet, shared.PathHealth, "", from(attacker)...); r.status == http.StatusTooManyRequests || r.status == http.StatusUnauthorized {
		t.Errorf("public health from the limited address = %d, want it to stay open", r.status)
	}
}

// The table of failing addresses is fixed in size: a flood from more
// addresses than it holds keeps it at its bound, and wrong keys never get a
// bucket in the POST limiter.
func TestFailedAuthMemoryIsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(proxied))
	n := authTableSize + 500
	for i := range n {
		ip := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		r := e.do(http.MethodPost, shared.PathUsage, snap("default", t0, 1),
			"X-Forwarded-For", ip, "Content-Type", "application/json", shared.HeaderAPIKey, fmt.Sprintf("guess-%d", i))
		if r.status != http.StatusUnauthorized {
			t.Fatalf("guess %d = %d %s", i, r.status, r.body)
		}
	}
	if got, want := e.srv.authLimit.size(), authTableSize; got != want {
		t.Errorf("failed-auth table holds %d addresses after %d, want its bound %d", got, n, want)
	}
	if got := e.srv.postLimits.size(); got != 0 {
		t.Errorf("the POST limiter holds %d buckets for wrong keys, want 0", got)
	}
	// IPv6 clients count per /64: the addresses of one host are one entry.
	before := e.srv.authLimit.size()
	for i := range 20 {
		e.get(shared.PathUsage, "X-Forwarded-For", fmt.Sprintf("2001:db8:1:2::%x", i+1), "Authorization", "Bearer guess")
	}
	r := e.get(shared.PathUsage, "X-Forwarded-For", "2001:db8:1:2:ffff::1")
	wantError(t, r, http.StatusTooManyRequests, shared.CodeRateLimited)
	if got := e.srv.authLimit.size(); got != before {
		t.Errorf("20 addresses of one /64 took %d entries, want the bound kept (%d)", got, before)
	}
}

// Behind --trusted-proxies the client is the rightmost X-Forwarded-For
// entry that is not a trusted proxy; without, the header is ignored. The
// access log shows which address the server took.
func TestClientAddressBehindTrustedProxies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		proxies []string
		xff     []string // one header per entry
		want    string
	}{
		{"no trusted proxy: header ignored", nil, []string{"1.1.1.1"}, "0.0.0.0"},
		{"one proxy", []string{"0.0.0.0"}, []string{"1.1.1.1"}, "1.1.1.1"},
		{"client-written entries on the left", []string{"0.0.0.0"}, []string{"6.6.6.6, 7.7.7.7, 1.1.1.1"}, "1.1.1.1"},
		{"a chain of trusted proxies", []string{"0.0.0.0", "10.0.0.0/8"}, []string{"6.6.6.6, 1.1.1.1, 10.0.0.5, 10.1.2.3"}, "1.1.1.1"},
		{"every hop trusted", []string{"0.0.0.0", "10.0.0.0/8"}, []string{"10.0.0.7, 10.0.0.5"}, "10.0.0.7"},
		{"two headers are one list", []string{"0.0.0.0"}, []string{"6.6.6.6", "1.1.1.1"}, "1.1.1.1"},
		{"garbage on the left", []string{"0.0.0.0"}, []string{"<script>, 1.1.1.1"}, "1.1.1.1"},
		{"garbage from the proxy", []string{"0.0.0.0"}, []string{"1.1.1.1, nonsense"}, "0.0.0.0"},
		{"IPv6 client", []string{"0.0.0.0"}, []string{"2001:db8::1"}, "2001:db8::1"},
		{"no header", []string{"0.0.0.0"}, nil, "0.0.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, withConfig(func(c *Config) { c.TrustedProxies = tt.proxies }))
			req, err := http.NewRequest(http.MethodGet, "http://x"+shared.PathHealth, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			res, err := e.srv.App().Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			rid := res.Header.Get(shared.HeaderRequestID)
			got := ""
			for _, l := range logLines(t, e.logs.String()) {
				if l["msg"] == "request" && l["requestId"] == rid {
					got, _ = l["ip"].(string)
				}
			}
			if got != tt.want {
				t.Errorf("client address = %q, want %q", got, tt.want)
			}
		})
	}
	e := newEnv(t)
	if _, err := New(Config{APIKey: testKey, ReadToken: testToken, TrustedProxies: []string{"10.0.0.0/33"}}, e.st, nil); err == nil {
		t.Error("New accepted a trusted proxy that is not an IP or CIDR")
	}
}

// --max-accounts bounds what one write key can create; the accounts that
// exist keep working, and /metrics has no series beyond the bound.
func TestMaxAccounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.MaxAccounts = 3 }))
	for _, a := range []string{"a", "b", "c"} {
		e.mustPost(snap(a, t0.Add(-time.Minute), 1))
	}
	eb := wantError(t, e.post(snap("d", t0, 1)), http.StatusForbidden, shared.CodeAccountLimit)
	if !strings.Contains(eb.Message, "3") || !strings.Contains(eb.Suggestion, "--max-accounts") {
		t.Errorf("error does not give the limit and the flag: %+v", eb)
	}
	e.mustPost(snap("b", t0, 2))
	if got := e.st.Accounts(); len(got) != 3 {
		t.Errorf("accounts = %v, want 3", got)
	}
	r := e.do(http.MethodGet, shared.PathMetrics, "")
	if got := strings.Count(string(r.body), "usage_versions{"); got != 3 {
		t.Errorf("/metrics has %d usage_versions series, want 3", got)
	}
}

// Concurrent POSTs for new accounts cannot each take the last place.
func TestMaxAccountsUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.MaxAccounts = 2 }))
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = e.post(snap(fmt.Sprintf("acct%d", i), t0, 1)).status
		}()
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		switch s {
		case http.StatusCreated:
			created++
		case http.StatusForbidden:
		default:
			t.Errorf("status %d, want 201 or 403", s)
		}
	}
	if created != 2 || len(e.st.Accounts()) != 2 {
		t.Errorf("%d created, %d accounts stored; want 2 and 2 (statuses %v)", created, len(e.st.Accounts()), statuses)
	}
}

// rawRequest sends head (without the final blank line) and body on a new
// connection and reads one answer, within a bound far below the server's
// read timeout.
func rawRequest(t *testing.T, base, head, body string) (resp, time.Duration) {
	t.Helper()
	u, err := neturl.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := io.WriteString(conn, head+"\r\n"+body); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer within 5 s: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}, time.Since(start)
}

// Request headers up to 16 KiB are normal (a large cookie on a shared
// domain); beyond that the answer is 431 with the error body.
func TestRequestHeaderSizes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustPost(snap("default", t0.Add(-time.Minute), 1))
	base := e.listen()
	get := func(cookie int) string {
		return "GET " + shared.PathUsage + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testToken +
			"\r\nCookie: c=" + strings.Repeat("x", cookie) + "\r\n"
	}
	tests := []struct {
		name   string
		cookie int
		status int
	}{
		{"6 KiB cookie", 6 << 10, http.StatusOK},
		{"15 KiB cookie", 15 << 10, http.StatusOK},
		{"17 KiB cookie", 17 << 10, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := rawRequest(t, base, get(tt.cookie), "")
			if tt.status == http.StatusOK {
				if r.status != http.StatusOK {
					t.Fatalf("status = %d %s, want 200", r.status, r.body)
				}
				return
			}
			eb := wantError(t, r, tt.status, shared.CodeHeadersTooLarge)
			if !strings.Contains(eb.Message, "16 KiB") {
				t.Errorf("message %q does not give the limit", eb.Message)
			}
		})
	}
}

// Two Content-Length headers that disagree are refused at once (not after
// the read timeout, waiting for a body that never comes); agreeing ones
// are fine.
func TestConflictingContentLength(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base := e.listen()
	body := snap("default", t0, 1)
	head := func(lengths ...int) string {
		h := "POST " + shared.PathUsage + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-API-Key: " + testKey + "\r\n"
		for _, n := range lengths {
			h += "Content-Length: " + strconv.Itoa(n) + "\r\n"
		}
		return h
	}
	r, took := rawRequest(t, base, head(len(body), len(body)+500), body)
	eb := wantError(t, r, http.StatusBadRequest, shared.CodeValidationFailed)
	if eb.Field != "Content-Length" {
		t.Errorf("field = %q, want Content-Length", eb.Field)
	}
	if took > 2*time.Second {
		t.Errorf("answered after %v; it must not wait for the body", took)
	}
	if got := e.st.Count("default"); got != 0 {
		t.Errorf("stored %d versions from a request with conflicting lengths", got)
	}
	if r, _ := rawRequest(t, base, head(len(body), len(body)), body); r.status != http.StatusCreated {
		t.Errorf("two equal Content-Length headers = %d %s, want 201", r.status, r.body)
	}
	// A client cannot set the server's own mark.
	r, _ = rawRequest(t, base, head(len(body))+headerConflict+": 1\r\n", snap("default", t0.Add(time.Second), 1))
	if r.status != http.StatusCreated {
		t.Errorf("a request carrying the internal mark itself = %d %s, want 201", r.status, r.body)
	}
}

// --verbose logs request detail but no credential, wherever it is sent.
func TestVerboseLogsNoCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.Verbose = true }))
	secrets := []string{"query-secret-1", "query-secret-2", "proxy-secret-3", "cookie-secret-4", "bearer-secret-5", testKey}
	e.get(shared.PathUsage+"?token="+secrets[0]+"&ACCESS_TOKEN="+secrets[1], "Proxy-Authorization", "Basic "+secrets[2],
		"Cookie", "s="+secrets[3])
	e.get(shared.PathUsage, "Authorization", "Bearer "+secrets[4])
	e.post(snap("default", t0, 1))
	logs := e.logs.String()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the verbose log contains %q", s)
		}
	}
	if !strings.Contains(logs, "token=[redacted]") || !strings.Contains(logs, "Proxy-Authorization") {
		t.Errorf("the verbose log lacks the redacted detail:\n%s", logs)
	}
}

// The 401 of /metrics points at the metrics token, not the write key; a
// client's IDEMPOTENCY_KEY_REUSED is no store write failure.
func TestMetricsTexts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) { c.MetricsToken = "metrics-token-0123456789" }))
	for _, r := range []resp{e.do(http.MethodGet, shared.PathMetrics, ""),
		e.do(http.MethodGet, shared.PathMetrics, "", "Authorization", "Bearer wrong")} {
		eb := r.errBody(t)
		if strings.Contains(eb.Suggestion, "X-API-Key") || strings.Contains(strings.ToLower(eb.Suggestion), "write key") ||
			!strings.Contains(eb.Suggestion, "metrics token") {
			t.Errorf("/metrics 401 suggests %q", eb.Suggestion)
		}
	}
	e.post(snap("default", t0, 1), shared.HeaderIdempotencyKey, "k1")
	wantError(t, e.post(snap("default", t0, 2), shared.HeaderIdempotencyKey, "k1"),
		http.StatusUnprocessableEntity, shared.CodeIdempotencyKeyReused)
	r := e.do(http.MethodGet, shared.PathMetrics, "", "Authorization", "Bearer metrics-token-0123456789")
	if strings.Contains(string(r.body), `usage_store_write_failures_total{code="IDEMPOTENCY_KEY_REUSED"}`) {
		t.Error("a reused idempotency key counts as a store write failure")
	}
}

// The page's CSP allows no inline script but the ones go-app writes into
// the page, by hash: every inline script of the page served is allowed,
// and nothing else is.
func TestPageInlineScriptsMatchTheCSP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *Config) {
		c.Widget = &widgetmount.Options{WebDir: filepath.Join(testutil.MustRepoRoot(t), "web"), Version: "test"}
	}))
	r := e.do(http.MethodGet, "/", "")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "<html") {
		t.Fatalf("GET / = %d %.200s", r.status, r.body)
	}
	csp := r.header.Get("Content-Security-Policy")
	script := cspDirective(t, csp, "script-src")
	for _, bad := range []string{"'unsafe-inline'", "'unsafe-eval'", "*", "data:"} {
		if slices.Contains(script, bad) {
			t.Errorf("script-src allows %s: %q", bad, script)
		}
	}
	var hashes []string
	for _, src := range script {
		if strings.HasPrefix(src, "'sha256-") {
			hashes = append(hashes, src)
		}
	}
	inline := widgetmount.ScriptHashes(string(r.body))
	for _, h := range inline {
		if !slices.Contains(hashes, h) {
			t.Errorf("the page's inline script %s is not allowed by the CSP %q", h, csp)
		}
	}
	for _, h := range hashes {
		if !slices.Contains(inline, h) {
			t.Errorf("the CSP allows %s, which is no inline script of the page", h)
		}
	}
	if strings.Contains(strings.ToLower(string(r.body)), " onload=") || strings.Contains(strings.ToLower(string(r.body)), " onclick=") {
		t.Error("the page has inline event handlers, which script-src without 'unsafe-hashes' blocks")
	}
}
