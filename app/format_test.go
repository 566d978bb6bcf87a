package app

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

func TestLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    float64
		want string
	}{
		{"zero", 0, LevelOK}, {"just below warn", 74.99, LevelOK}, {"warn starts at 75", 75, LevelWarn},
		{"top of warn", 89.9, LevelWarn}, {"critical at 90", 90, LevelCritical}, {"full", 100, LevelCritical},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Level(tt.p); got != tt.want {
				t.Errorf("Level(%v) = %q, want %q", tt.p, got, tt.want)
			}
		})
	}
}

func TestResetText(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC) // a Saturday
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name     string
		resetsAt *time.Time
		fallback string
		loc      *time.Location
		want     string
	}{
		{"hours and minutes", at(2*time.Hour + 10*time.Minute + 30*time.Second), "", time.UTC, "Resets in 2 h 10 min"},
		{"minutes only", at(45 * time.Minute), "", time.UTC, "Resets in 45 min"},
		{"under a minute", at(20 * time.Second), "", time.UTC, "Resets in less than 1 min"},
		{"just under a day", at(23*time.Hour + 59*time.Minute), "", time.UTC, "Resets in 23 h 59 min"},
		{"beyond a day: weekday and time", at(5*24*time.Hour + 19*time.Hour), "", time.UTC, "Resets Fri 09:00"},
		{"beyond a day in the local zone", at(5*24*time.Hour + 19*time.Hour), "", berlin, "Resets Fri 10:00"},
		{"passed", at(-time.Minute), "", time.UTC, "Resetting now"},
		{"unknown time keeps the page's text", nil, "Resets Thu 9:00 AM", time.UTC, "Resets Thu 9:00 AM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ResetText(tt.resetsAt, tt.fallback, now, tt.loc); got != tt.want {
				t.Errorf("ResetText = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStateTexts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, got, want string
	}{
		{"breaker full cooldown", BreakerOpenText(60 * time.Second), "Service temporarily unavailable - retrying in 60s"},
		{"breaker rounds up", BreakerOpenText(59*time.Second + time.Millisecond), "Service temporarily unavailable - retrying in 60s"},
		{"breaker at zero", BreakerOpenText(0), "Service temporarily unavailable - retrying in 0s"},
		{"stale", StaleText(20*time.Minute + 59*time.Second), "Data is 20 min old"},
		{"cached", CachedText(12 * time.Minute), "Cached 12 min ago"},
		{"cached clock skew", CachedText(-time.Minute), "Cached 0 min ago"},
		{"percent rounds", PercentText(41.6), "42%"},
		{"usd", MoneyText(1250, "USD"), "$12.50"},
		{"other currency", MoneyText(5, "CHF"), "0.05 CHF"},
		{"extra with limit", ExtraUsageText(&shared.ExtraUsage{Enabled: true, UsedCents: 1250, LimitCents: 5000, Currency: "USD"}), "Extra usage: $12.50 of $50.00"},
		{"extra disabled", ExtraUsageText(&shared.ExtraUsage{Enabled: false, UsedCents: 1}), ""},
		{"scraper ok", ScraperProblemText(&shared.ScraperStatus{OK: true}), ""},
		{"scraper signed out", ScraperProblemText(&shared.ScraperStatus{Category: shared.ScrapeNotLoggedIn}), "Scraper signed out — run `usage-scraper login`"},
		{"scraper challenge", ScraperProblemText(&shared.ScraperStatus{Category: shared.ScrapeChallenge}), "Claude showed a browser check — run `usage-scraper login` once and pass it in the window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestTokenFromFragment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, fragment, token, rest string
		ok                          bool
	}{
		{"token only", "token=abc", "abc", "", true},
		{"with hash", "#token=abc", "abc", "", true},
		{"keeps other parts", "view=x&token=abc&y=1", "abc", "view=x&y=1", true},
		{"escaped", "token=a%2Bb%3D", "a+b=", "", true},
		{"a plus stays a plus", "token=a+b", "a+b", "", true},
		{"base64 as pasted", "token=Zm9v+YmFy/cQ==&view=compact", "Zm9v+YmFy/cQ==", "view=compact", true},
		{"escaped space", "token=a%20b", "a b", "", true},
		{"bad escape kept as written", "token=a%zz+b", "a%zz+b", "", true},
		{"hex", "token=3f9a0c", "3f9a0c", "", true},
		{"empty token", "token=", "", "token=", false},
		{"no token", "section-2", "", "section-2", false},
		{"empty", "", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, rest, ok := TokenFromFragment(tt.fragment)
			if token != tt.token || rest != tt.rest || ok != tt.ok {
				t.Errorf("TokenFromFragment(%q) = %q, %q, %v; want %q, %q, %v", tt.fragment, token, rest, ok, tt.token, tt.rest, tt.ok)
			}
		})
	}
}

func TestCache(t *testing.T) {
	t.Parallel()
	st := NewMemoryStorage()
	c := NewCache(st)
	at := time.Date(2026, 11, 28, 14, 0, 0, 0, time.UTC)
	r := &shared.UsageResponse{Snapshot: shared.Snapshot{Account: "work", Meters: []shared.Meter{{ID: "session", Label: "S", PercentUsed: 5}}}}
	if err := c.SaveLast("work", r, at); err != nil {
		t.Fatal(err)
	}
	got, ok := c.LoadLast("work")
	if !ok || !got.SavedAt.Equal(at) || got.Response.Meters[0].PercentUsed != 5 {
		t.Fatalf("LoadLast = %+v, %v", got, ok)
	}
	if _, ok := c.LoadLast("other"); ok {
		t.Error("LoadLast of another account found data")
	}

	// A corrupt entry is dropped, not shown and not kept.
	key := "usage-widget.last.v1.bad"
	_ = st.Set(key, "{not json")
	if _, ok := c.LoadLast("bad"); ok {
		t.Error("corrupt entry loaded")
	}
	if _, exists, _ := st.Get(key); exists {
		t.Error("corrupt entry kept")
	}

	if err := c.SetToken("  tok "); err != nil || c.Token() != "tok" {
		t.Errorf("token = %q, %v", c.Token(), err)
	}
	if err := c.SetToken(""); err != nil || c.Token() != "" {
		t.Errorf("token after clearing = %q, %v", c.Token(), err)
	}

	st.Fail = errors.New("QuotaExceededError")
	if err := c.SaveLast("work", r, at); err == nil || !strings.HasPrefix(err.Error(), "cache: ") {
		t.Errorf("SaveLast on a failing storage = %v, want a cache: error", err)
	}
	if _, ok := c.LoadLast("work"); ok {
		t.Error("LoadLast on a failing storage found data")
	}
}

func TestParseSettings(t *testing.T) {
	t.Parallel()
	env := Settings{Refresh: 2 * time.Second, RetryDelay: 300 * time.Millisecond, BreakerThreshold: 4, BreakerCooldown: 5 * time.Second}.Env()
	got := ParseSettings(func(k string) string { return env[k] })
	want := Settings{Refresh: 2 * time.Second, RetryDelay: 300 * time.Millisecond, BreakerThreshold: 4, BreakerCooldown: 5 * time.Second}
	if got != want {
		t.Errorf("round trip = %+v, want %+v", got, want)
	}
	bad := map[string]string{EnvRefresh: "soon", EnvRetryDelay: "-1s", EnvBreakerThreshold: "0"}
	if got, want := ParseSettings(func(k string) string { return bad[k] }), DefaultSettings(); got != want {
		t.Errorf("malformed values = %+v, want the defaults %+v", got, want)
	}
}

func TestSplitCode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"no code", "check the connection", []string{"check the connection"}},
		{"one command", "run `usage-scraper login`", []string{"run ", "usage-scraper login", ""}},
		{"two commands", "`a` then `b` now", []string{"", "a", " then ", "b", " now"}},
		{"a lone backtick stays text", "run `a` or `b", []string{"run ", "a", " or `b"}},
		{"empty", "", []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitCode(tt.in)
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("SplitCode(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if strings.Join(got, "`") != tt.in {
				t.Errorf("joined back = %q, want %q: nothing may be lost", strings.Join(got, "`"), tt.in)
			}
		})
	}
}

func TestCacheForget(t *testing.T) {
	t.Parallel()
	st := NewMemoryStorage()
	c := NewCache(st)
	r := &shared.UsageResponse{Snapshot: shared.Snapshot{Meters: []shared.Meter{{ID: "session", Label: "S"}}}}
	for _, err := range []error{c.SetToken("t"), c.SetAccount("a"), c.SaveLast("a", r, time.Now()), c.SaveLast("", r, time.Now()), st.Set("x", "y")} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Forget(); err != nil {
		t.Fatal(err)
	}
	keys, _ := st.Keys()
	if got, want := strings.Join(keys, ","), "x"; got != want {
		t.Errorf("keys after Forget = %q, want %q (only what is not the widget's)", got, want)
	}
	if _, ok := c.LoadLast("a"); ok || c.Token() != "" || c.Account() != "" {
		t.Error("Forget left the widget's data")
	}
	st.Fail = errors.New("storage disabled")
	if err := c.Forget(); err == nil || !strings.Contains(err.Error(), "storage disabled") {
		t.Errorf("Forget on a failing storage = %v, want its error", err)
	}
}
