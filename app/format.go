package app

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/claude-usage/widget/shared"
)

// Widget texts, one per state; tests and the e2e suite
// compare against these exactly.
const (
	TextLoading        = "Loading..."
	TextNoData         = "No data available"
	TextNoDataHint     = "Waiting for data — start the scraper on your laptop"
	TextRetrying       = "Connection error - retrying"
	TextUnavailable    = "Data unavailable"
	TextUnauthorized   = "Access token missing or invalid"
	textBreakerOpenFmt = "Service temporarily unavailable - retrying in %ds"
	textStaleFmt       = "Data is %d min old"
	textCachedFmt      = "Cached %d min ago"
	TextPartial        = "Partial data — some limits could not be read"
	TextUpdateReady    = "A new version of the widget is ready."
)

// BreakerOpenText is the open-breaker line for the time left.
func BreakerOpenText(retryIn time.Duration) string {
	return fmt.Sprintf(textBreakerOpenFmt, ceilSeconds(retryIn))
}

// StaleText is the staleness warning for data of the given age.
func StaleText(age time.Duration) string { return fmt.Sprintf(textStaleFmt, int(age/time.Minute)) }

// CachedText marks data shown from the cache, by the time since it was
// received.
func CachedText(age time.Duration) string {
	if age < 0 {
		age = 0
	}
	return fmt.Sprintf(textCachedFmt, int(age/time.Minute))
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// Level classes of a meter's bar: below 75, 75-89, 90 and over.
const (
	LevelOK       = "level-ok"
	LevelWarn     = "level-warn"
	LevelCritical = "level-critical"
)

// Level returns the bar class for a percentage.
func Level(percent float64) string {
	switch {
	case percent >= 90:
		return LevelCritical
	case percent >= 75:
		return LevelWarn
	}
	return LevelOK
}

// PercentText renders a percentage without false precision.
func PercentText(p float64) string {
	if math.IsNaN(p) || math.IsInf(p, 0) {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", math.Round(p))
}

// ResetText is the live reset countdown: "Resets in 2 h 10 min" within a
// day, the local weekday and time beyond ("Resets Thu 09:00"). fallback is
// the page's own text, used when resetsAt is unknown.
func ResetText(resetsAt *time.Time, fallback string, now time.Time, loc *time.Location) string {
	if resetsAt == nil || resetsAt.IsZero() {
		return fallback
	}
	d := resetsAt.Sub(now)
	switch {
	case d <= 0:
		return "Resetting now"
	case d < time.Minute:
		return "Resets in less than 1 min"
	case d < 24*time.Hour:
		h := int(d / time.Hour)
		m := int((d % time.Hour) / time.Minute)
		if h == 0 {
			return fmt.Sprintf("Resets in %d min", m)
		}
		return fmt.Sprintf("Resets in %d h %d min", h, m)
	}
	if loc == nil {
		loc = time.Local
	}
	return "Resets " + resetsAt.In(loc).Format("Mon 15:04")
}

// MoneyText renders cents in a currency: "$12.50" for USD, "12.50 EUR"
// otherwise.
func MoneyText(cents int64, currency string) string {
	neg := cents < 0
	if neg {
		cents = -cents
	}
	s := fmt.Sprintf("%d.%02d", cents/100, cents%100)
	switch strings.ToUpper(currency) {
	case "", "USD":
		s = "$" + s
	case "EUR":
		s = "€" + s
	case "GBP":
		s = "£" + s
	default:
		s = s + " " + strings.ToUpper(currency)
	}
	if neg {
		s = "-" + s
	}
	return s
}

// ExtraUsageText describes the pay-as-you-go spend, or "" when disabled.
func ExtraUsageText(e *shared.ExtraUsage) string {
	if e == nil || !e.Enabled {
		return ""
	}
	if e.LimitCents > 0 {
		return "Extra usage: " + MoneyText(e.UsedCents, e.Currency) + " of " + MoneyText(e.LimitCents, e.Currency)
	}
	return "Extra usage: " + MoneyText(e.UsedCents, e.Currency)
}

// ScraperProblemText is the scraper's last reported problem, or "" when
// it reported success (or nothing).
func ScraperProblemText(s *shared.ScraperStatus) string {
	if s == nil || s.OK {
		return ""
	}
	return s.Category.NextStep()
}

// SplitCode splits s at its backticks: even elements are prose, odd ones
// the commands that were between a pair. A lone backtick is kept as text,
// so nothing is lost when a message has an odd number of them.
func SplitCode(s string) []string {
	parts := strings.Split(s, "`")
	if len(parts)%2 == 0 {
		// The last backtick has no partner: give it back to the prose.
		last := len(parts) - 1
		parts[last-1] += "`" + parts[last]
		parts = parts[:last]
	}
	return parts
}
