package upload

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/claude-usage/widget/internal/atomicfile"
	"github.com/claude-usage/widget/shared"
)

// StatsWindow is how many recent syncs the statistics cover.
const StatsWindow = 10

// SyncRecord is one Send: all its attempts and waits.
type SyncRecord struct {
	At         time.Time       `json:"at"`
	OK         bool            `json:"ok"`
	Attempts   int             `json:"attempts"`
	DurationMs int64           `json:"durationMs"`
	Category   shared.Category `json:"category,omitempty"`
	// NotUsageServer is set when the answer did not come from a usage-server.
	NotUsageServer bool `json:"notUsageServer,omitempty"`
}

// ErrorRecord is the latest failure, of a sync or of a scrape.
type ErrorRecord struct {
	At       time.Time `json:"at"`
	Kind     string    `json:"kind"` // "sync", "scrape" or "outbox"
	Category string    `json:"category"`
	Message  string    `json:"message"`
}

// ScrapeRecord is the latest scrape's outcome.
type ScrapeRecord struct {
	At       time.Time `json:"at"`
	OK       bool      `json:"ok"`
	Category string    `json:"category"`
	Message  string    `json:"message,omitempty"`
}

// State is what `usage-scraper status` shows; it is kept in a small JSON
// file so that a separate process can read it.
type State struct {
	LastSuccess *time.Time    `json:"lastSuccess,omitempty"` // last acknowledged snapshot
	LastError   *ErrorRecord  `json:"lastError,omitempty"`
	LastScrape  *ScrapeRecord `json:"lastScrape,omitempty"`
	// NotUsageServer is the latest answer from the server URL that was not
	// a usage-server's (a captive portal, a proxy, a wrong --server); nil
	// again after the next delivered snapshot.
	NotUsageServer *ErrorRecord `json:"notUsageServer,omitempty"`
	Recent         []SyncRecord `json:"recent"` // the last StatsWindow syncs, oldest first
	// Dropped is the latest loss of snapshots the scraper could neither
	// store nor send (the outbox unwritable and the memory bound reached).
	Dropped *ErrorRecord `json:"dropped,omitempty"`
	// LastSource is the source of the latest snapshot; Sources holds each
	// source's latest success and error.
	LastSource string                   `json:"lastSource,omitempty"`
	Sources    map[string]*SourceRecord `json:"sources,omitempty"`
	Drift      *DriftRecord             `json:"drift,omitempty"`
}

// Stats summarises the recent syncs.
type Stats struct {
	Syncs       int     `json:"syncs"`
	SuccessRate float64 `json:"successRate"` // 0..1
	RetryRate   float64 `json:"retryRate"`   // share of syncs that needed a retry, 0..1
	MinMs       int64   `json:"minMs"`
	MaxMs       int64   `json:"maxMs"`
	AvgMs       int64   `json:"avgMs"`
}

// Stats computes the statistics over s.Recent.
func (s State) Stats() Stats {
	var st Stats
	st.Syncs = len(s.Recent)
	if st.Syncs == 0 {
		return st
	}
	var ok, retried int
	var sum int64
	st.MinMs = s.Recent[0].DurationMs
	for _, r := range s.Recent {
		if r.OK {
			ok++
		}
		if r.Attempts > 1 {
			retried++
		}
		sum += r.DurationMs
		st.MinMs = min(st.MinMs, r.DurationMs)
		st.MaxMs = max(st.MaxMs, r.DurationMs)
	}
	n := float64(st.Syncs)
	st.SuccessRate = float64(ok) / n
	st.RetryRate = float64(retried) / n
	st.AvgMs = sum / int64(st.Syncs)
	return st
}

// LogAttrs renders the statistics as slog key/value pairs.
func (st Stats) LogAttrs() []any {
	return []any{"syncs", st.Syncs, "successRate", st.SuccessRate, "retryRate", st.RetryRate,
		"minMs", st.MinMs, "maxMs", st.MaxMs, "avgMs", st.AvgMs}
}

// Tracker keeps State in memory and in its file. It is safe for
// concurrent use; a failed save is logged, never fatal: the statistics must
// not stop the scraper.
type Tracker struct {
	path string
	log  *slog.Logger
	mu   sync.Mutex
	st   State
}

// OpenTracker loads the state file at path (empty path: memory only). A
// file that does not parse is logged and replaced.
func OpenTracker(path string, log *slog.Logger) (*Tracker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tracker{path: path, log: log.With("component", "sync")}
	if path == "" {
		return t, nil
	}
	st, err := ReadState(path)
	var se *stateError
	switch {
	case errors.As(err, &se):
		t.log.Warn("state file unreadable, starting fresh statistics", "file", path, "error", err.Error())
	case err != nil:
		return nil, err
	default:
		t.st = st
	}
	return t, nil
}

type stateError struct{ err error }

func (e *stateError) Error() string { return e.err.Error() }
func (e *stateError) Unwrap() error { return e.err }

// ReadState reads a state file; a missing file is the zero State.
func ReadState(path string) (State, error) {
	var st State
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("sync: reading state %s: %w", path, err)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return State{}, &stateError{fmt.Errorf("sync: state %s does not parse: %w", path, err)}
	}
	if len(st.Recent) > StatsWindow {
		st.Recent = st.Recent[len(st.Recent)-StatsWindow:]
	}
	return st, nil
}

// State returns a copy of the current state.
func (t *Tracker) State() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.copyLocked()
}

func (t *Tracker) copyLocked() State {
	st := t.st
	st.Recent = append([]SyncRecord(nil), t.st.Recent...)
	st.Sources = copySources(t.st.Sources)
	if t.st.Drift != nil {
		d := *t.st.Drift
		st.Drift = &d
	}
	return st
}

// RecordSync adds one sync to the window and returns the new statistics.
func (t *Tracker) RecordSync(r SyncRecord, errMsg string) Stats {
	t.mu.Lock()
	t.st.Recent = append(t.st.Recent, r)
	if len(t.st.Recent) > StatsWindow {
		t.st.Recent = append([]SyncRecord(nil), t.st.Recent[len(t.st.Recent)-StatsWindow:]...)
	}
	if r.OK {
		at := r.At.Add(time.Duration(r.DurationMs) * time.Millisecond)
		t.st.LastSuccess = &at
		t.st.NotUsageServer = nil
	} else {
		t.st.LastError = &ErrorRecord{At: r.At, Kind: "sync", Category: string(r.Category), Message: errMsg}
		if r.NotUsageServer {
			t.st.NotUsageServer = t.st.LastError
		}
	}
	st := t.copyLocked()
	t.mu.Unlock()
	t.save(st)
	return st.Stats()
}

// RecordScrape notes a scrape's outcome; a failure is also the last error.
func (t *Tracker) RecordScrape(r ScrapeRecord) {
	t.mu.Lock()
	t.st.LastScrape = &r
	if !r.OK {
		t.st.LastError = &ErrorRecord{At: r.At, Kind: "scrape", Category: r.Category, Message: r.Message}
	}
	st := t.copyLocked()
	t.mu.Unlock()
	t.save(st)
}

// RecordDropped notes snapshots lost for good; it is also the last error.
func (t *Tracker) RecordDropped(at time.Time, message string) {
	t.mu.Lock()
	r := &ErrorRecord{At: at, Kind: "outbox", Category: string(CategoryDropped), Message: message}
	t.st.Dropped, t.st.LastError = r, r
	st := t.copyLocked()
	t.mu.Unlock()
	t.save(st)
}

// CategoryDropped names the loss of snapshots in the state file and in the
// scraper status the widget shows.
const CategoryDropped = shared.ScrapeSnapshotsDropped

func (t *Tracker) save(st State) {
	if t.path == "" {
		return
	}
	raw, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = os.MkdirAll(filepath.Dir(t.path), 0o700)
	}
	if err == nil {
		// A reader (`usage-scraper status`) sees the old or the new state,
		// never half of one.
		err = atomicfile.Write(t.path, raw, 0o600)
	}
	if err != nil {
		t.log.Warn("state file not saved", "file", t.path, "error", err.Error())
	}
}
