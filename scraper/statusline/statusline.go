// Package statusline is the usage-scraper statusline command's core: it
// reads the JSON Claude Code pipes to its statusline command, turns the
// 5-hour and 7-day figures into one short line and a snapshot, and queues
// that snapshot at most once a minute. It never touches the network:
// Claude Code runs it after every message and waits for its line.
package statusline

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/claude-usage/widget/shared"
)

// Source is the source of statusline snapshots.
const Source = "claude-code/statusline"

// maxInput bounds what is read from stdin.
const maxInput = 1 << 20

// Window is one rate-limit window as Claude Code reports it.
type Window struct {
	UsedPercentage *float64 `json:"used_percentage"`
	// ResetsAt is epoch seconds or an RFC 3339 string.
	ResetsAt json.RawMessage `json:"resets_at"`
}

// Input is the part of Claude Code's statusline JSON this package reads.
type Input struct {
	RateLimits *struct {
		FiveHour *Window `json:"five_hour"`
		SevenDay *Window `json:"seven_day"`
	} `json:"rate_limits"`
}

// Reading is what one statusline call carries: the snapshot (no meters
// when Claude Code sent no rate limits) and any field it could not read.
type Reading struct {
	Snapshot shared.Snapshot
	Problems []string
}

// Read parses the statusline JSON from r. Unreadable JSON is an error;
// missing or odd fields are Problems, so the line still prints.
func Read(r io.Reader, now time.Time) (Reading, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return Reading{}, fmt.Errorf("statusline: reading stdin: %w", err)
	}
	if len(raw) > maxInput {
		return Reading{}, fmt.Errorf("statusline: input larger than %d bytes", maxInput)
	}
	var in Input
	if err := json.Unmarshal(raw, &in); err != nil {
		return Reading{}, fmt.Errorf("statusline: input is not Claude Code's statusline JSON: %w", err)
	}
	rd := Reading{Snapshot: shared.Snapshot{ScrapedAt: now.UTC(), Source: Source, Capture: shared.CaptureStatusline, Meters: []shared.Meter{}}}
	if in.RateLimits == nil {
		return rd, nil
	}
	for _, w := range []struct {
		name, id, label string
		win             *Window
	}{
		{"five_hour", shared.MeterSession, "Current session", in.RateLimits.FiveHour},
		{"seven_day", shared.MeterWeeklyAll, "All models", in.RateLimits.SevenDay},
	} {
		if w.win == nil {
			continue
		}
		if w.win.UsedPercentage == nil {
			rd.Problems = append(rd.Problems, w.name+".used_percentage is missing")
			continue
		}
		p := *w.win.UsedPercentage
		if math.IsNaN(p) || p < 0 || p > 100 {
			rd.Problems = append(rd.Problems, fmt.Sprintf("%s.used_percentage %g is outside 0-100", w.name, p))
			continue
		}
		m := shared.Meter{ID: w.id, Label: w.label, PercentUsed: p}
		t, err := resetsAt(w.win.ResetsAt)
		if err != nil {
			rd.Problems = append(rd.Problems, w.name+".resets_at "+err.Error())
		}
		m.ResetsAt = t
		rd.Snapshot.Meters = append(rd.Snapshot.Meters, m)
	}
	return rd, nil
}

func resetsAt(raw json.RawMessage) (*time.Time, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return nil, nil
	}
	var t time.Time
	if strings.HasPrefix(s, `"`) {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("is not a string")
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			t = time.Unix(n, 0)
		} else if t, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return nil, fmt.Errorf("%q is neither epoch seconds nor RFC 3339", v)
		}
	} else {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
			return nil, fmt.Errorf("%s is not epoch seconds", s)
		}
		t = time.Unix(int64(f), 0)
	}
	t = t.UTC()
	if shared.CheckTime("resets_at", t) != nil {
		return nil, fmt.Errorf("%s is out of range", t.Format(time.RFC3339))
	}
	return &t, nil
}

// Line is the one line Claude Code shows, e.g. "5h 42% ↻16:00 · 7d 18% ↻Thu":
// each window's use and when it resets, a time today (within a day) or a
// weekday, in loc. Without rate limits it says so briefly.
func Line(s shared.Snapshot, now time.Time, loc *time.Location) string {
	var parts []string
	for _, w := range []struct{ id, short string }{{shared.MeterSession, "5h"}, {shared.MeterWeeklyAll, "7d"}} {
		m, ok := s.Meter(w.id)
		if !ok {
			continue
		}
		p := fmt.Sprintf("%s %s%%", w.short, strconv.FormatFloat(math.Round(m.PercentUsed), 'f', -1, 64))
		if m.ResetsAt != nil {
			p += " ↻" + when(*m.ResetsAt, now, loc)
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "usage: no rate limits yet"
	}
	return strings.Join(parts, " · ")
}

func when(t, now time.Time, loc *time.Location) string {
	t = t.In(loc)
	if t.Sub(now) < 24*time.Hour {
		return t.Format("15:04")
	}
	return t.Format("Mon")
}
