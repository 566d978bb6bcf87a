package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/claude-usage/widget/shared"
)

// decodeSnapshot is shared.DecodeSnapshot with sharper field paths:
// encoding/json reports a bad time as a problem of the whole body, a type
// error inside the meters list without its index, and an unknown nested
// field without its parent. When that happens the body is walked again to
// name the exact field (meters[2].percentUsed), so the scraper's operator
// sees which value was wrong.
func decodeSnapshot(body []byte) (shared.Snapshot, error) {
	s, err := shared.DecodeSnapshot(body)
	if err == nil {
		return s, nil
	}
	if fe, ok := locateProblem(body); ok {
		return s, &shared.ValidationError{Problems: []shared.FieldError{fe}}
	}
	return s, err
}

var (
	topFields   = map[string]bool{"account": true, "scrapedAt": true, "source": true, "capture": true, "meters": true, "extraUsage": true, "partial": true, "extractionErrors": true}
	meterFields = map[string]bool{"id": true, "label": true, "percentUsed": true, "resetsAt": true, "resetsText": true}
	extraFields = map[string]bool{"enabled": true, "usedCents": true, "limitCents": true, "currency": true}
)

// locateProblem finds the first field in body that cannot decode into a
// Snapshot. ok is false when the body is not a JSON object at all or no
// field-level problem is found (the generic error then stands).
func locateProblem(body []byte) (shared.FieldError, bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return shared.FieldError{}, false
	}
	// encoding/json matches names case-insensitively; so must we.
	if k, ok := fold(top, topFields); !ok {
		return shared.FieldError{Field: truncateRunes(k, 60), Reason: "is not a known field"}, true
	}
	bad := func(field, format string, args ...any) (shared.FieldError, bool) {
		return shared.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}, true
	}
	if raw, ok := top["scrapedAt"]; ok {
		if reason := checkTime(raw, false); reason != "" {
			return bad("scrapedAt", "%s", reason)
		}
	}
	if raw, ok := top["meters"]; ok && !isNull(raw) {
		var ms []json.RawMessage
		if json.Unmarshal(raw, &ms) != nil {
			return bad("meters", "must be an array of meters")
		}
		for i, mraw := range ms {
			p := fmt.Sprintf("meters[%d]", i)
			var m map[string]json.RawMessage
			if json.Unmarshal(mraw, &m) != nil {
				return bad(p, "must be an object")
			}
			if k, ok := fold(m, meterFields); !ok {
				return bad(p+"."+truncateRunes(k, 60), "is not a known field")
			}
			for _, k := range []string{"id", "label", "resetsText"} {
				if r, ok := m[k]; ok && !isType[string](r) {
					return bad(p+"."+k, "must be a string")
				}
			}
			if r, ok := m["percentUsed"]; ok && !isType[float64](r) {
				return bad(p+".percentUsed", "must be a number from 0 to 100, got %s", truncateRunes(string(r), 40))
			}
			if r, ok := m["resetsAt"]; ok {
				if reason := checkTime(r, true); reason != "" {
					return bad(p+".resetsAt", "%s", reason)
				}
			}
		}
	}
	if raw, ok := top["extraUsage"]; ok && !isNull(raw) {
		var e map[string]json.RawMessage
		if json.Unmarshal(raw, &e) != nil {
			return bad("extraUsage", "must be an object")
		}
		if k, ok := fold(e, extraFields); !ok {
			return bad("extraUsage."+truncateRunes(k, 60), "is not a known field")
		}
		for k, r := range e {
			switch {
			case k == "enabled" && !isType[bool](r):
				return bad("extraUsage.enabled", "must be a boolean")
			case (k == "usedCents" || k == "limitCents") && !isType[int64](r):
				return bad("extraUsage."+k, "must be a whole number of cents")
			case k == "currency" && !isType[string](r):
				return bad("extraUsage.currency", "must be a string")
			}
		}
	}
	for _, k := range []string{"account", "source", "capture"} {
		if r, ok := top[k]; ok && !isType[string](r) {
			return bad(k, "must be a string")
		}
	}
	if r, ok := top["partial"]; ok && !isType[bool](r) {
		return bad("partial", "must be a boolean")
	}
	if r, ok := top["extractionErrors"]; ok && !isType[map[string]string](r) {
		return bad("extractionErrors", "must be an object of meter id to reason")
	}
	return shared.FieldError{}, false
}

// fold renames m's keys to their canonical spelling in known (in place).
// When a key is not known, it returns that key and false.
func fold(m map[string]json.RawMessage, known map[string]bool) (string, bool) {
	for k, v := range m {
		if known[k] {
			continue
		}
		canon := ""
		for name := range known {
			if strings.EqualFold(name, k) {
				canon = name
			}
		}
		if canon == "" {
			return k, false
		}
		delete(m, k)
		m[canon] = v
	}
	return "", true
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func isType[T any](raw json.RawMessage) bool {
	var v T
	return json.Unmarshal(raw, &v) == nil
}

func checkTime(raw json.RawMessage, nullable bool) string {
	if isNull(raw) {
		if nullable {
			return ""
		}
		return "is required"
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "must be an RFC 3339 time string"
	}
	if _, err := time.Parse(time.RFC3339, s); err != nil {
		var pe *time.ParseError
		if errors.As(err, &pe) {
			return fmt.Sprintf("must be an RFC 3339 time such as 2026-11-28T13:50:00Z, got %q", truncateRunes(s, 60))
		}
		return "must be an RFC 3339 time: " + err.Error()
	}
	return ""
}
