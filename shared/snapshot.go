// Package shared holds the wire contract between scraper, server and widget:
// snapshot types and their validation, the error-code catalogue, error
// classification and the circuit breaker. It imports only the standard
// library so that it builds for GOOS=js GOARCH=wasm.
package shared

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
	"unicode/utf8"
)

// Known meter ids. Any other id matching MeterIDPattern is accepted.
const (
	MeterSession      = "session"
	MeterWeeklyAll    = "weekly_all"
	MeterWeeklySonnet = "weekly_sonnet"
	MeterWeeklyOpus   = "weekly_opus"
)

// Capture methods.
const (
	CaptureAPI        = "api"
	CaptureDOM        = "dom"
	CaptureOAuth      = "oauth"      // Claude Code's OAuth usage endpoint
	CaptureStatusline = "statusline" // Claude Code's statusline JSON
)

// DefaultAccount is used when a snapshot names no account.
const DefaultAccount = "default"

// Limits of the wire contract.
const (
	MaxBodyBytes     = 64 << 10
	MaxMeters        = 32
	MaxLabelLen      = 100
	MaxFutureSkew    = 5 * time.Minute
	MaxHistoryPoints = 2000
)

var (
	// MeterIDPattern is the shape every meter id must have.
	MeterIDPattern = NewPattern(`^[a-z0-9_]{1,48}$`)
	// AccountPattern is the shape of an account name; it is safe as a path
	// segment because it cannot contain a slash or start with a dot.
	AccountPattern = NewPattern(`^[a-z0-9][a-z0-9._@-]{0,63}$`)
)

// Meter is one usage limit as Claude shows it.
type Meter struct {
	ID          string     `json:"id"`
	Label       string     `json:"label"`
	PercentUsed float64    `json:"percentUsed"`
	ResetsAt    *time.Time `json:"resetsAt,omitempty"`
	ResetsText  string     `json:"resetsText,omitempty"`
	// Pace is computed by the server in GET answers (ComputePace); a
	// snapshot that carries one is refused.
	Pace *Pace `json:"pace,omitempty"`
}

// ExtraUsage is the pay-as-you-go spend beyond the plan, when enabled.
type ExtraUsage struct {
	Enabled    bool   `json:"enabled"`
	UsedCents  int64  `json:"usedCents"`
	LimitCents int64  `json:"limitCents"`
	Currency   string `json:"currency,omitempty"`
}

// Snapshot is one reading of the usage page: the POST body.
type Snapshot struct {
	Account          string            `json:"account"`
	ScrapedAt        time.Time         `json:"scrapedAt"`
	Source           string            `json:"source,omitempty"`
	Capture          string            `json:"capture,omitempty"`
	Meters           []Meter           `json:"meters"`
	ExtraUsage       *ExtraUsage       `json:"extraUsage,omitempty"`
	Partial          bool              `json:"partial"`
	ExtractionErrors map[string]string `json:"extractionErrors,omitempty"`
	// Drift holds, per meter id, the two readings of one scrape that
	// disagree by more than DriftPoints (the page's JSON and its text, or
	// two sources).
	Drift map[string]DriftPair `json:"drift,omitempty"`
}

// DriftPair is one meter's two disagreeing readings.
type DriftPair struct {
	API float64 `json:"api"`
	DOM float64 `json:"dom"`
}

// DriftPoints is how far two readings of one meter may differ before the
// snapshot reports drift.
const DriftPoints = 2

// DriftText is what the widget shows while the newest snapshot has drift.
const DriftText = "The usage page and its data disagree — the scraper may need an update"

// Meter returns the meter with the given id, if present.
func (s *Snapshot) Meter(id string) (Meter, bool) {
	for _, m := range s.Meters {
		if m.ID == id {
			return m, true
		}
	}
	return Meter{}, false
}

// FieldError is one validation problem with the JSON path of its field.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (e FieldError) Error() string { return e.Field + " " + e.Reason }

// ValidationError lists every problem found in a snapshot.
type ValidationError struct {
	Problems []FieldError
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 0 {
		return "snapshot: invalid"
	}
	msg := e.Problems[0].Error()
	if n := len(e.Problems) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more)", n)
	}
	return msg
}

// Field is the path of the first problem, for the error body.
func (e *ValidationError) Field() string {
	if len(e.Problems) == 0 {
		return ""
	}
	return e.Problems[0].Field
}

// Normalize fills defaults that the contract allows to be omitted. It is
// applied before Validate on the server.
func (s *Snapshot) Normalize() {
	if s.Account == "" {
		s.Account = DefaultAccount
	}
	s.ScrapedAt = s.ScrapedAt.UTC()
	for i := range s.Meters {
		if s.Meters[i].ResetsAt != nil {
			t := s.Meters[i].ResetsAt.UTC()
			s.Meters[i].ResetsAt = &t
		}
	}
	if s.Capture == "" {
		s.Capture = CaptureAPI
	}
}

// Validate checks the snapshot against the wire contract at time now and
// returns a *ValidationError listing every problem, or nil.
func (s *Snapshot) Validate(now time.Time) error {
	var ps []FieldError
	add := func(field, format string, args ...any) {
		ps = append(ps, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if s.Account == "" {
		add("account", "is required")
	} else if !AccountPattern.MatchString(s.Account) {
		add("account", "must match %s, got %q", AccountPattern, truncate(s.Account, 80))
	}
	if s.ScrapedAt.IsZero() {
		add("scrapedAt", "is required")
	} else if r := timeProblem(s.ScrapedAt); r != "" {
		add("scrapedAt", "%s", r)
	} else if s.ScrapedAt.After(now.Add(MaxFutureSkew)) {
		add("scrapedAt", "must not be more than 5 min in the future, got %s (server time %s)",
			s.ScrapedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	switch s.Capture {
	case CaptureAPI, CaptureDOM, CaptureOAuth, CaptureStatusline:
	case "":
		add("capture", "is required (one of api, dom, oauth, statusline)")
	default:
		add("capture", "must be one of api, dom, oauth, statusline, got %q", truncate(s.Capture, 40))
	}
	if len(s.Source) > 200 {
		add("source", "must be at most 200 characters")
	} else if r := textProblem(s.Source); r != "" {
		add("source", "%s", r)
	}
	switch n := len(s.Meters); {
	case n == 0:
		add("meters", "must contain at least 1 meter")
	case n > MaxMeters:
		add("meters", "must contain at most %d meters, got %d", MaxMeters, n)
	}
	seen := make(map[string]int, len(s.Meters))
	for i, m := range s.Meters {
		p := fmt.Sprintf("meters[%d]", i)
		if !MeterIDPattern.MatchString(m.ID) {
			add(p+".id", "must match %s, got %q", MeterIDPattern, truncate(m.ID, 60))
		} else if j, dup := seen[m.ID]; dup {
			add(p+".id", "duplicates meters[%d].id %q", j, m.ID)
		} else {
			seen[m.ID] = i
		}
		if n := utf8.RuneCountInString(m.Label); n < 1 || n > MaxLabelLen {
			add(p+".label", "must be 1-%d characters, got %d", MaxLabelLen, n)
		} else if r := textProblem(m.Label); r != "" {
			add(p+".label", "%s", r)
		}
		if math.IsNaN(m.PercentUsed) || math.IsInf(m.PercentUsed, 0) {
			add(p+".percentUsed", "must be a finite number")
		} else if m.PercentUsed < 0 || m.PercentUsed > 100 {
			add(p+".percentUsed", "must be between 0 and 100, got %g", m.PercentUsed)
		}
		if m.ResetsAt != nil {
			if m.ResetsAt.IsZero() {
				add(p+".resetsAt", "must be an RFC 3339 time")
			} else if r := timeProblem(*m.ResetsAt); r != "" {
				add(p+".resetsAt", "%s", r)
			}
		}
		if m.Pace != nil {
			add(p+".pace", "is computed by the server; a snapshot must not carry it")
		}
		if len(m.ResetsText) > 200 {
			add(p+".resetsText", "must be at most 200 characters")
		} else if r := textProblem(m.ResetsText); r != "" {
			add(p+".resetsText", "%s", r)
		}
	}
	if e := s.ExtraUsage; e != nil {
		if e.UsedCents < 0 {
			add("extraUsage.usedCents", "must not be negative, got %d", e.UsedCents)
		}
		if e.LimitCents < 0 {
			add("extraUsage.limitCents", "must not be negative, got %d", e.LimitCents)
		}
		if len(e.Currency) > 8 {
			add("extraUsage.currency", "must be at most 8 characters")
		} else if r := textProblem(e.Currency); r != "" {
			add("extraUsage.currency", "%s", r)
		}
	}
	if len(s.ExtractionErrors) > MaxMeters {
		add("extractionErrors", "must have at most %d entries", MaxMeters)
	}
	// In key order, so that the first problem (the error body's field)
	// is the same for the same body.
	for _, k := range slices.Sorted(maps.Keys(s.ExtractionErrors)) {
		v := s.ExtractionErrors[k]
		if !MeterIDPattern.MatchString(k) {
			add("extractionErrors", "key must match %s, got %q", MeterIDPattern, truncate(k, 60))
			break
		}
		if len(v) > 500 {
			add("extractionErrors."+k, "must be at most 500 characters")
		} else if r := textProblem(v); r != "" {
			add("extractionErrors."+k, "%s", r)
		}
	}
	if len(s.Drift) > MaxMeters {
		add("drift", "must have at most %d entries", MaxMeters)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Drift)) {
		if !MeterIDPattern.MatchString(k) {
			add("drift", "key must match %s, got %q", MeterIDPattern, truncate(k, 60))
			break
		}
		d := s.Drift[k]
		for _, r := range []struct {
			name string
			v    float64
		}{{"api", d.API}, {"dom", d.DOM}} {
			if math.IsNaN(r.v) || math.IsInf(r.v, 0) || r.v < 0 || r.v > 100 {
				add("drift."+k+"."+r.name, "must be a number between 0 and 100")
			}
		}
	}
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}

// truncate keeps the first n characters of s (never half of one).
func truncate(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j] + "…"
		}
		i++
	}
	return s
}

// DecodeSnapshot parses a POST body strictly: unknown top-level fields and
// trailing data are rejected, and type errors name the field.
func DecodeSnapshot(body []byte) (Snapshot, error) { return decodeStrict[Snapshot](body, "snapshot") }

// decodeStrict parses one JSON object of type T from a request body, with
// the rules every POST body follows (valid UTF-8, no unknown fields, no
// trailing data); what names the body in errors.
func decodeStrict[T any](body []byte, what string) (T, error) {
	var v T
	if !utf8.Valid(body) {
		return v, &ValidationError{Problems: []FieldError{{Field: "body", Reason: "must be valid UTF-8"}}}
	}
	dec := json.NewDecoder(bytesReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, decodeProblem(err, what)
	}
	if dec.More() {
		return v, &ValidationError{Problems: []FieldError{{Field: "body", Reason: "must contain exactly one JSON object"}}}
	}
	return v, nil
}

// decodeProblem turns a decoding error of a body (a snapshot, a scraper
// status) into a *ValidationError naming the field where it can.
func decodeProblem(err error, what string) error {
	var (
		te *json.UnmarshalTypeError
		se *json.SyntaxError
		pe *time.ParseError
	)
	switch {
	case asErr(err, &te):
		f := te.Field
		if f == "" {
			f = "body"
		}
		return &ValidationError{Problems: []FieldError{{Field: f, Reason: fmt.Sprintf("must be a %s, got %s", jsonType(te.Type.Kind().String()), te.Value)}}}
	case asErr(err, &se):
		return &ValidationError{Problems: []FieldError{{Field: "body", Reason: fmt.Sprintf("is not valid JSON at offset %d: %v", se.Offset, se)}}}
	case asErr(err, &pe):
		return &ValidationError{Problems: []FieldError{{Field: "body", Reason: fmt.Sprintf("has a time that is not RFC 3339: %q", truncate(pe.Value, 60))}}}
	}
	msg := err.Error()
	if f, ok := unknownField(msg); ok {
		return &ValidationError{Problems: []FieldError{{Field: f, Reason: "is not a known field"}}}
	}
	return &ValidationError{Problems: []FieldError{{Field: "body", Reason: "is not a valid " + what + ": " + truncate(msg, 200)}}}
}

func jsonType(kind string) string {
	switch kind {
	case "float64", "float32", "int", "int64", "int32", "uint", "uint64":
		return "number"
	case "struct", "map", "ptr":
		return "object"
	case "slice", "array":
		return "array"
	}
	return kind
}
