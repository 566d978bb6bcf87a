package testutil

import (
	"errors"
	"time"

	"github.com/claude-usage/widget/shared"
)

// Snap is a valid snapshot of account scraped at at with the session meter
// at pct, all three meters and extra usage filled: the store tests' unit
// of data.
func Snap(account string, at time.Time, pct float64) shared.Snapshot {
	r := at.Add(3 * time.Hour)
	return shared.Snapshot{
		Account: account, ScrapedAt: at.UTC(), Source: "claude.ai/settings/usage", Capture: shared.CaptureAPI,
		Meters: []shared.Meter{
			{ID: shared.MeterSession, Label: "Current session", PercentUsed: pct, ResetsAt: &r, ResetsText: "Resets in 3 hr"},
			{ID: shared.MeterWeeklyAll, Label: "All models", PercentUsed: pct / 2},
			{ID: shared.MeterWeeklySonnet, Label: "Sonnet only", PercentUsed: 3},
		},
		ExtraUsage: &shared.ExtraUsage{Enabled: true, UsedCents: 1250, LimitCents: 5000, Currency: "USD"},
	}
}

// CodeOf is err's shared code, "" when it has none.
func CodeOf(err error) shared.Code {
	var se *shared.Error
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}
