// Package alert turns stored usage into alerts (thresholds, resets, pace,
// a failing scraper, stale data) and delivers each one, once, through
// durable per-channel queues: Web Push, ntfy and a webhook.
package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind is what an alert is about.
type Kind string

// The kinds, as --alert-kinds names them.
const (
	KindThreshold Kind = "threshold"
	KindReset     Kind = "reset"
	KindPace      Kind = "pace"
	KindScraper   Kind = "scraper"
	KindStale     Kind = "stale"
	// KindTest is the widget's "Send test notification"; it is never
	// evaluated and never configured.
	KindTest Kind = "test"
)

// AllKinds are the kinds --alert-kinds enables by default.
var AllKinds = []Kind{KindThreshold, KindReset, KindPace, KindScraper, KindStale}

// DefaultThresholds are --alert-thresholds' default.
var DefaultThresholds = []int{75, 90, 95}

// Rules of DESIGN's Alerts section.
const (
	Hysteresis      = 5                // points below a threshold that re-arm it
	ResetMinPeak    = 50               // a window must have reached this for its reset to count
	PaceMinPercent  = 30               // pace alerts start at this usage
	PaceMargin      = 10 * time.Minute // runsOutAt must be this far before resetsAt
	ScraperAfter    = 15 * time.Minute // a scraper problem must last this long
	StaleAfter      = 30 * time.Minute // no new data for this long
	DefaultTick     = time.Minute      // how often stale and scraper are evaluated
	DefaultIconPath = "/web/icon-192.png"
)

// Alert is one thing to tell the user. Channels encode it their way; the
// webhook sends the JSON fields below except Title, Crossed and Path.
type Alert struct {
	ID          string     `json:"id"`
	Kind        Kind       `json:"kind"`
	Account     string     `json:"account"`
	Meter       string     `json:"meter"`
	Label       string     `json:"label"`
	PercentUsed float64    `json:"percentUsed"`
	Threshold   int        `json:"threshold"`
	ResetsAt    *time.Time `json:"resetsAt"`
	RunsOutAt   *time.Time `json:"runsOutAt"`
	Title       string     `json:"title"`
	Message     string     `json:"message"`
	At          time.Time  `json:"at"`
	// Crossed are every threshold one snapshot crossed (a threshold alert
	// is sent once, for the highest); a subscription that chose any of
	// them gets it.
	Crossed []int `json:"crossed,omitempty"`
}

// ID is the alert id of DESIGN: hex SHA-256 of
// account|meter|kind|threshold|window resetsAt. Receivers de-duplicate by it.
func ID(account, meter string, kind Kind, threshold int, window time.Time) string {
	th := ""
	if threshold > 0 {
		th = strconv.Itoa(threshold)
	}
	w := ""
	if !window.IsZero() {
		w = window.UTC().Format(time.RFC3339)
	}
	sum := sha256.Sum256([]byte(account + "|" + meter + "|" + string(kind) + "|" + th + "|" + w))
	return hex.EncodeToString(sum[:])
}

// ParseKinds parses --alert-kinds (comma-separated; empty: none).
func ParseKinds(s string) ([]Kind, error) {
	var out []Kind
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		k := Kind(f)
		if !slices.Contains(AllKinds, k) {
			return nil, fmt.Errorf("unknown alert kind %q; known: threshold, reset, pace, scraper, stale", f)
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}

// ParseThresholds parses --alert-thresholds: whole percents 1–100, sorted
// and de-duplicated.
func ParseThresholds(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 100 {
			return nil, fmt.Errorf("alert threshold %q must be a whole percent from 1 to 100", f)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// formatDuration renders a span the way the alert texts do: "35 min",
// "1 h 10 min", "2 d 3 h".
func formatDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	m := int(d.Round(time.Minute) / time.Minute)
	days, hours, mins := m/(24*60), m/60%24, m%60
	switch {
	case days > 0 && hours > 0:
		return fmt.Sprintf("%d d %d h", days, hours)
	case days > 0:
		return fmt.Sprintf("%d d", days)
	case hours > 0 && mins > 0:
		return fmt.Sprintf("%d h %d min", hours, mins)
	case hours > 0:
		return fmt.Sprintf("%d h", hours)
	}
	return fmt.Sprintf("%d min", mins)
}

// clock renders a time of day in loc; a time not today also gets its
// weekday ("Thu 09:00"), so a weekly reset is not mistaken for today's.
func clock(t, now time.Time, loc *time.Location) string {
	t, now = t.In(loc), now.In(loc)
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format("15:04")
	}
	return t.Format("Mon 15:04")
}

func percent(p float64) string { return strconv.Itoa(int(p)) + " %" }

func thresholdText(label string, pct float64, resets *time.Time, now time.Time, loc *time.Location) string {
	s := label + " at " + percent(pct)
	if resets != nil {
		s += " — resets " + clock(*resets, now, loc) + " (in " + formatDuration(resets.Sub(now)) + ")"
	}
	return s
}

func paceText(label string, runsOut, resets, now time.Time, loc *time.Location) string {
	return "At this pace " + label + " runs out at " + clock(runsOut, now, loc) + ", " +
		formatDuration(resets.Sub(runsOut)) + " before it resets"
}

func resetText(label string, pct float64) string {
	return label + " has reset — " + percent(pct) + " used"
}

func staleText(age time.Duration) string {
	return "No new usage data for " + formatDuration(age)
}
