package upload

import (
	"maps"
	"time"

	"github.com/claude-usage/widget/shared"
)

// SourceRecord is one source's latest outcomes (oauth, browser,
// statusline), for `usage-scraper status`.
type SourceRecord struct {
	LastSuccess *time.Time   `json:"lastSuccess,omitempty"`
	LastError   *ErrorRecord `json:"lastError,omitempty"`
}

// DriftRecord counts the scrapes whose two readings disagreed by more
// than shared.DriftPoints on a meter.
type DriftRecord struct {
	Count  int                         `json:"count"`
	LastAt time.Time                   `json:"lastAt"`
	Last   map[string]shared.DriftPair `json:"last"`
}

// RecordSource notes one source's outcome. A success also makes it the
// source used last.
func (t *Tracker) RecordSource(name string, at time.Time, ok bool, category, message string) {
	t.mu.Lock()
	if t.st.Sources == nil {
		t.st.Sources = map[string]*SourceRecord{}
	}
	r := t.st.Sources[name]
	if r == nil {
		r = &SourceRecord{}
		t.st.Sources[name] = r
	}
	if ok {
		r.LastSuccess = &at
		t.st.LastSource = name
	} else {
		r.LastError = &ErrorRecord{At: at, Kind: "scrape", Category: category, Message: message}
	}
	st := t.copyLocked()
	t.mu.Unlock()
	t.save(st)
}

// RecordDrift counts a snapshot with drift.
func (t *Tracker) RecordDrift(at time.Time, drift map[string]shared.DriftPair) {
	t.mu.Lock()
	if t.st.Drift == nil {
		t.st.Drift = &DriftRecord{}
	}
	t.st.Drift.Count++
	t.st.Drift.LastAt = at
	t.st.Drift.Last = maps.Clone(drift)
	st := t.copyLocked()
	t.mu.Unlock()
	t.save(st)
}

// copySources deep-copies the per-source records, so that a State handed
// out does not change under its reader.
func copySources(in map[string]*SourceRecord) map[string]*SourceRecord {
	if in == nil {
		return nil
	}
	out := make(map[string]*SourceRecord, len(in))
	for k, v := range in {
		c := *v
		out[k] = &c
	}
	return out
}
