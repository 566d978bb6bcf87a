package parse

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/claude-usage/widget/shared"
)

// maxSectionLines bounds how far below a label the parser looks for the
// reset and the percentage, so a meter never borrows another's numbers.
const maxSectionLines = 8

var (
	percentRe = regexp.MustCompile(`(?i)(\d{1,3}(?:[.,]\d+)?)\s*%\s*used`)
	anyPctRe  = regexp.MustCompile(`(?i)%\s*used|\bused\b`)
	onlyRe    = regexp.MustCompile(`(?i)^([a-z][a-z0-9 .\-]{0,30}?)\s+only$`)
	relRe     = regexp.MustCompile(`(?i)^resets\s+in\s+(.+)$`)
	relPartRe = regexp.MustCompile(`(?i)(\d+)\s*(days?|d|hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)\b`)
	dateRe    = regexp.MustCompile(`(?i)^resets\s+(?:on\s+)?(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+(\d{1,2}),?\s+(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*([ap]\.?m\.?)?$`)
	absRe     = regexp.MustCompile(`(?i)^resets\s+(?:on\s+)?(?:(today|tomorrow|mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+)?(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*([ap]\.?m\.?)?$`)
)

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// domLabel recognises a meter heading in the page text.
func domLabel(line string) (id, label string, known bool) {
	switch strings.ToLower(line) {
	case "current session":
		return shared.MeterSession, LabelSession, true
	case "all models":
		return shared.MeterWeeklyAll, LabelWeeklyAll, true
	}
	m := onlyRe.FindStringSubmatch(line)
	if m == nil {
		return "", "", false
	}
	if id, label := scopedMeter(m[1]); id != "" {
		return id, label, true
	}
	id = SanitizeID(m[1])
	if id == "" {
		return "", "", false
	}
	return trimID("weekly_" + id), line, false
}

// ParseDOM parses the rendered text of the usage page (document.body
// innerText), the fallback when the JSON was not captured. Reset times are
// computed relative to now, in loc (the page's time zone) for weekday
// forms; the text itself is kept in ResetsText.
func ParseDOM(text string, now time.Time, loc *time.Location) (shared.Snapshot, error) {
	if loc == nil {
		loc = time.Local
	}
	s := newSnapshot(now, shared.CaptureDOM)
	b := builder{snap: &s}

	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(text, "\r", ""), "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			lines = append(lines, l)
		}
	}
	type heading struct {
		at           int
		id, label    string
		known, found bool
	}
	var hs []heading
	for i, l := range lines {
		if id, label, known := domLabel(l); id != "" {
			hs = append(hs, heading{at: i, id: id, label: label, known: known})
		}
	}
	for k, h := range hs {
		end := len(lines)
		if k+1 < len(hs) {
			end = hs[k+1].at
		}
		end = min(end, h.at+1+maxSectionLines)
		section := lines[h.at+1 : end]

		var m shared.Meter
		var pctErr error
		pctSeen := false
		for _, l := range section {
			if strings.HasPrefix(strings.ToLower(l), "resets") && m.ResetsText == "" {
				m.ResetsText = clip(l, 197) // 200 with the ellipsis, the wire limit
				m.ResetsAt = resetTime(l, now, loc)
				continue
			}
			if pm := percentRe.FindStringSubmatch(l); pm != nil && !pctSeen {
				pctSeen = true
				f, err := strconv.ParseFloat(strings.ReplaceAll(pm[1], ",", "."), 64)
				switch {
				case err != nil:
					pctErr = fmt.Errorf("percent %q is not a number", pm[1])
				case f < 0 || f > 100 || math.IsNaN(f):
					pctErr = fmt.Errorf("percent %g is outside 0-100", f)
				default:
					m.PercentUsed = f
				}
			}
		}
		// A generic "X only" line without any usage nearby is ordinary prose,
		// not a meter, so it is ignored rather than reported.
		if !h.known && !pctSeen && m.ResetsText == "" && !anyUsageWord(section) {
			continue
		}
		id := b.uniqueID(h.id)
		switch {
		case pctErr != nil:
			b.fail(id, pctErr.Error())
		case !pctSeen:
			b.fail(id, fmt.Sprintf("no \"%% used\" under %q", h.label))
		default:
			m.ID, m.Label = id, h.label
			b.add(m)
		}
	}
	return b.finish("page text")
}

func anyUsageWord(section []string) bool {
	for _, l := range section {
		if anyPctRe.MatchString(l) {
			return true
		}
	}
	return false
}

// resetTime reads "Resets in 2 hr 10 min" or "Resets Thu 9:00 AM"; it
// returns nil for any other wording, which is not an error: the text is
// kept and shown as is.
func resetTime(line string, now time.Time, loc *time.Location) *time.Time {
	line = strings.TrimSpace(line)
	if m := relRe.FindStringSubmatch(line); m != nil {
		var d time.Duration
		parts := relPartRe.FindAllStringSubmatch(m[1], -1)
		if len(parts) == 0 {
			return nil
		}
		for _, p := range parts {
			n, err := strconv.Atoi(p[1])
			if err != nil || n > 10000 {
				return nil
			}
			switch u := strings.ToLower(p[2]); {
			case strings.HasPrefix(u, "d"):
				d += time.Duration(n) * 24 * time.Hour
			case strings.HasPrefix(u, "h"):
				d += time.Duration(n) * time.Hour
			case strings.HasPrefix(u, "m"):
				d += time.Duration(n) * time.Minute
			default:
				d += time.Duration(n) * time.Second
			}
		}
		t := now.Add(d).UTC()
		return &t
	}
	if m := dateRe.FindStringSubmatch(line); m != nil {
		hour, minute, ok := clockTime(m[3], m[4], m[5])
		day, _ := strconv.Atoi(m[2])
		month := time.Month(strings.Index("janfebmaraprmayjunjulaugsepoctnovdec", strings.ToLower(m[1]))/3 + 1)
		if !ok || day < 1 || day > 31 {
			return nil
		}
		// The text has no year: it is the next such date, which may be in
		// January of next year.
		local := now.In(loc)
		for y := local.Year(); y <= local.Year()+1; y++ {
			t := time.Date(y, month, day, hour, minute, 0, 0, loc)
			if t.Month() != month { // Feb 30 and the like
				return nil
			}
			if t.After(now) {
				t = t.UTC()
				return &t
			}
		}
		return nil
	}
	m := absRe.FindStringSubmatch(line)
	if m == nil {
		return nil
	}
	hour, minute, ok := clockTime(m[2], m[3], m[4])
	if !ok {
		return nil
	}
	local := now.In(loc)
	at := func(days int) time.Time {
		return time.Date(local.Year(), local.Month(), local.Day()+days, hour, minute, 0, 0, loc)
	}
	var t time.Time
	switch day := strings.ToLower(m[1]); day {
	case "today":
		t = at(0)
	case "tomorrow":
		t = at(1)
	case "":
		// A bare time is the next time the clock shows it.
		if t = at(0); !t.After(now) {
			t = at(1)
		}
	default:
		wd := weekdays[day[:3]]
		days := (int(wd) - int(local.Weekday()) + 7) % 7
		if t = at(days); !t.After(now) {
			t = at(days + 7)
		}
	}
	t = t.UTC()
	return &t
}

// clockTime reads "9", "9:30", "9:30 PM", "21:00".
func clockTime(h, m, ampm string) (hour, minute int, ok bool) {
	hour, _ = strconv.Atoi(h)
	if m != "" {
		minute, _ = strconv.Atoi(m)
	}
	if ampm = strings.ToLower(strings.ReplaceAll(ampm, ".", "")); ampm != "" {
		if hour < 1 || hour > 12 {
			return 0, 0, false
		}
		hour %= 12
		if ampm == "pm" {
			hour += 12
		}
	}
	if hour > 23 || minute > 59 {
		return 0, 0, false
	}
	return hour, minute, true
}
