package app

import (
	"math"
	"strconv"
	"time"

	"github.com/claude-usage/widget/shared"
)

// Pace texts.
const (
	TextOnPace       = "On pace"
	TextLastsUntil   = "Lasts until reset"
	textAheadSuffix  = " points ahead of pace"
	textUnderSuffix  = " points under pace"
	textRunsOutAt    = "Runs out at "
	textBeforeReset  = " before reset"
	textUpdated      = "Updated "
	textSourcePrefix = "Source: "
)

// MeterPace is the pace of m: the server's when it sent one, else computed
// with the same shared rule at the moment the percentage was true.
func MeterPace(m shared.Meter, scrapedAt time.Time) (shared.Pace, bool) {
	if m.Pace != nil {
		return *m.Pace, true
	}
	return shared.ComputePace(m, scrapedAt)
}

// BandText is the pace band in words, the distance in whole points.
func BandText(p shared.Pace) string {
	pts := strconv.Itoa(int(math.Round(math.Abs(p.DeltaPercent))))
	switch p.Band {
	case shared.BandAhead:
		return pts + textAheadSuffix
	case shared.BandUnder:
		return pts + textUnderSuffix
	}
	return TextOnPace
}

// ProjectionText says when the meter runs out at its rate, as a time in
// loc (with the weekday when that is not today) and how long before the
// reset; "" while there is no rate to project. countdown is the time
// until then, "" when it has passed.
func ProjectionText(p shared.Pace, resetsAt *time.Time, now time.Time, loc *time.Location) (text, countdown string) {
	if p.RunsOutAt == nil {
		if p.WillLast && p.RatePerHour != nil {
			return TextLastsUntil, ""
		}
		return "", ""
	}
	if loc == nil {
		loc = time.Local
	}
	at := p.RunsOutAt.In(loc)
	text = textRunsOutAt + ClockText(at, now.In(loc))
	if resetsAt != nil {
		text += " — " + DurationText(resetsAt.Sub(*p.RunsOutAt)) + textBeforeReset
	}
	if d := p.RunsOutAt.Sub(now); d >= time.Minute {
		countdown = "in " + DurationText(d)
	}
	return text, countdown
}

// ClockText is t's time of day, with its weekday when t is not on now's
// day (both in t's location).
func ClockText(t, now time.Time) string {
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format("15:04")
	}
	return t.Format("Mon 15:04")
}

// DurationText is a duration in the widget's words: "1 h 40 min",
// "40 min", "2 d 3 h", "less than 1 min".
func DurationText(d time.Duration) string {
	if d < time.Minute {
		return "less than 1 min"
	}
	mins := int(d / time.Minute)
	days, hours, m := mins/(24*60), mins/60%24, mins%60
	switch {
	case days > 0 && hours > 0:
		return strconv.Itoa(days) + " d " + strconv.Itoa(hours) + " h"
	case days > 0:
		return strconv.Itoa(days) + " d"
	case hours > 0 && m > 0:
		return strconv.Itoa(hours) + " h " + strconv.Itoa(m) + " min"
	case hours > 0:
		return strconv.Itoa(hours) + " h"
	}
	return strconv.Itoa(m) + " min"
}

// UpdatedText is the always-visible age of the data: "Updated 12 s ago",
// then minutes, hours and days.
func UpdatedText(age time.Duration) string {
	if age < 0 {
		age = 0
	}
	var n int
	var unit string
	switch {
	case age < time.Minute:
		n, unit = int(age/time.Second), " s"
	case age < time.Hour:
		n, unit = int(age/time.Minute), " min"
	case age < 48*time.Hour:
		n, unit = int(age/time.Hour), " h"
	default:
		n, unit = int(age/(24*time.Hour)), " d"
	}
	return textUpdated + strconv.Itoa(n) + unit + " ago"
}

// SourceName is how the scraper read the numbers: the usage page in a
// browser (its JSON or its text), Claude Code's OAuth usage endpoint, or
// its statusline.
func SourceName(capture string) string {
	switch capture {
	case shared.CaptureOAuth:
		return "oauth"
	case shared.CaptureStatusline:
		return "statusline"
	case shared.CaptureAPI, shared.CaptureDOM, "":
		return "browser"
	}
	return shared.CleanText(capture)
}

// SourceText is the source line next to UpdatedText.
func SourceText(capture string) string { return textSourcePrefix + SourceName(capture) }
