// Package parse turns what the usage page delivers — the JSON it loads from
// /api/organizations/{orgId}/usage and its rendered text — into snapshots,
// and decides between the two captures of one scrape (Build: classify the
// page, compare, merge). It is pure: no browser, no network, no clock of its own, so every shape
// Claude has used can be pinned down in golden files.
package parse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/claude-usage/widget/scraper/scrapeerr"
	"github.com/claude-usage/widget/shared"
)

// Source is the page every snapshot comes from.
const Source = "claude.ai/settings/usage"

// Labels as the usage page prints them.
const (
	LabelSession      = "Current session"
	LabelWeeklyAll    = "All models"
	LabelWeeklySonnet = "Sonnet only"
	LabelWeeklyOpus   = "Opus only"
)

// legacyKeys maps the older top-level keys to meter ids and labels, in the
// order the page shows them.
var legacyKeys = []struct{ key, id, label string }{
	{"five_hour", shared.MeterSession, LabelSession},
	{"seven_day", shared.MeterWeeklyAll, LabelWeeklyAll},
	{"seven_day_sonnet", shared.MeterWeeklySonnet, LabelWeeklySonnet},
	{"seven_day_opus", shared.MeterWeeklyOpus, LabelWeeklyOpus},
}

// notMeters are top-level keys that may carry "utilization" but are not
// plan limits.
var notMeters = map[string]bool{"extra_usage": true, "limits": true, "spend": true}

// ParseAPI parses the body of /api/organizations/{orgId}/usage. A key that
// is null yields no meter; a key with unreadable values goes to
// ExtractionErrors and makes the snapshot partial. No meter at all is a
// *scrapeerr.Error of class LayoutChanged (the snapshot is still returned
// so its extraction errors can be logged).
func ParseAPI(body []byte, now time.Time) (shared.Snapshot, error) {
	return parseUsage(body, now, shared.CaptureAPI, Source, "usage JSON")
}

// OAuthSource is the source of snapshots read from Claude Code's OAuth
// usage endpoint.
const OAuthSource = "api.anthropic.com/api/oauth/usage"

// ParseOAuth parses the body of the OAuth usage endpoint. It has the
// shapes of the page's JSON, so it is the same parser with another
// capture and source.
func ParseOAuth(body []byte, now time.Time) (shared.Snapshot, error) {
	return parseUsage(body, now, shared.CaptureOAuth, OAuthSource, "OAuth usage JSON")
}

func parseUsage(body []byte, now time.Time, capture, source, what string) (shared.Snapshot, error) {
	s := newSnapshot(now, capture)
	s.Source = source
	keys, fields, err := objectFields(body)
	if err != nil {
		return s, scrapeerr.New(scrapeerr.LayoutChanged, err, "parse: %s is not an object", what)
	}
	b := builder{snap: &s}
	if raw, ok := fields["limits"]; ok && !isNull(raw) {
		b.limits(raw)
	} else {
		b.legacy(keys, fields)
	}
	b.extraUsage(fields)
	return b.finish(what)
}

func newSnapshot(now time.Time, capture string) shared.Snapshot {
	return shared.Snapshot{
		ScrapedAt: now.UTC(),
		Source:    Source,
		Capture:   capture,
		Meters:    []shared.Meter{},
	}
}

// builder collects meters and extraction errors and keeps ids unique.
type builder struct {
	snap *shared.Snapshot
}

func (b *builder) has(id string) bool {
	_, ok := b.snap.Meter(id)
	if ok {
		return true
	}
	_, ok = b.snap.ExtractionErrors[id]
	return ok
}

// uniqueID returns id, or id with a numeric suffix when a meter already uses
// it, so that two limits that sanitize to the same id both survive.
func (b *builder) uniqueID(id string) string {
	if !b.has(id) {
		return id
	}
	for n := 2; ; n++ {
		suffix := "_" + strconv.Itoa(n)
		cand := id
		if len(cand)+len(suffix) > 48 {
			cand = strings.TrimRight(cand[:48-len(suffix)], "_")
		}
		if cand += suffix; !b.has(cand) {
			return cand
		}
	}
}

func (b *builder) add(m shared.Meter) {
	if len(b.snap.Meters) >= shared.MaxMeters {
		b.fail(m.ID, fmt.Sprintf("more than %d meters; dropped", shared.MaxMeters))
		return
	}
	b.snap.Meters = append(b.snap.Meters, m)
}

func (b *builder) fail(id, reason string) {
	if b.snap.ExtractionErrors == nil {
		b.snap.ExtractionErrors = map[string]string{}
	}
	if len(reason) > 500 {
		reason = reason[:497] + "..."
	}
	if len(b.snap.ExtractionErrors) >= shared.MaxMeters {
		return
	}
	b.snap.ExtractionErrors[id] = reason
}

func (b *builder) finish(what string) (shared.Snapshot, error) {
	b.snap.Partial = len(b.snap.ExtractionErrors) > 0
	if len(b.snap.Meters) == 0 {
		if n := len(b.snap.ExtractionErrors); n > 0 {
			return *b.snap, scrapeerr.New(scrapeerr.LayoutChanged, nil, "parse: no meter in %s (%d unreadable)", what, n)
		}
		return *b.snap, scrapeerr.New(scrapeerr.LayoutChanged, nil, "parse: no meter in %s", what)
	}
	return *b.snap, nil
}

func (b *builder) legacy(keys []string, fields map[string]json.RawMessage) {
	known := map[string]bool{}
	for _, k := range legacyKeys {
		known[k.key] = true
		raw, ok := fields[k.key]
		if !ok || isNull(raw) {
			continue
		}
		b.legacyMeter(raw, k.id, k.label)
	}
	for _, key := range keys {
		if known[key] || notMeters[key] {
			continue
		}
		raw := fields[key]
		var probe map[string]json.RawMessage
		if json.Unmarshal(raw, &probe) != nil {
			continue
		}
		if _, ok := probe["utilization"]; !ok {
			continue
		}
		id := SanitizeID(key)
		if id == "" {
			id = "unknown"
		}
		b.legacyMeter(raw, b.uniqueID(id), HumanLabel(key))
	}
}

func (b *builder) legacyMeter(raw json.RawMessage, id, label string) {
	var v struct {
		Utilization json.RawMessage `json:"utilization"`
		ResetsAt    json.RawMessage `json:"resets_at"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		b.fail(id, "not an object with utilization and resets_at")
		return
	}
	pct, err := percent(v.Utilization, "utilization")
	if err != nil {
		b.fail(id, err.Error())
		return
	}
	m := shared.Meter{ID: id, Label: label, PercentUsed: pct}
	if t, err := resetsAt(v.ResetsAt); err != nil {
		b.fail(id, err.Error())
	} else {
		m.ResetsAt = t
	}
	b.add(m)
}

type limitJSON struct {
	Kind     string          `json:"kind"`
	Group    string          `json:"group"`
	Percent  json.RawMessage `json:"percent"`
	ResetsAt json.RawMessage `json:"resets_at"`
	Scope    *struct {
		Model *struct {
			ID          string `json:"id"`
			DisplayName string `json:"display_name"`
		} `json:"model"`
		// Surface names a product the limit applies to (Claude Code, the
		// apps) rather than a model.
		Surface string `json:"surface"`
	} `json:"scope"`
	IsActive *bool `json:"is_active"`
}

func (b *builder) limits(raw json.RawMessage) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		b.fail("limits", "limits is not an array")
		return
	}
	for i, item := range items {
		if isNull(item) {
			continue
		}
		var l limitJSON
		if err := json.Unmarshal(item, &l); err != nil {
			b.fail(b.uniqueID(fmt.Sprintf("limits_%d", i)), fmt.Sprintf("limits[%d] is not a limit object", i))
			continue
		}
		id, label, err := limitIdentity(l)
		if err != nil {
			b.fail(b.uniqueID(fmt.Sprintf("limits_%d", i)), fmt.Sprintf("limits[%d]: %v", i, err))
			continue
		}
		id = b.uniqueID(id)
		pct, err := percent(l.Percent, "percent")
		if err != nil {
			b.fail(id, err.Error())
			continue
		}
		m := shared.Meter{ID: id, Label: label, PercentUsed: pct}
		if t, err := resetsAt(l.ResetsAt); err != nil {
			b.fail(id, err.Error())
		} else {
			m.ResetsAt = t
		}
		b.add(m)
	}
}

func limitIdentity(l limitJSON) (id, label string, err error) {
	switch l.Kind {
	case "session":
		return shared.MeterSession, LabelSession, nil
	case "weekly_all":
		return shared.MeterWeeklyAll, LabelWeeklyAll, nil
	case "weekly_scoped":
		if l.Scope != nil && l.Scope.Model == nil && SanitizeID(l.Scope.Surface) != "" {
			return trimID("weekly_" + SanitizeID(l.Scope.Surface)), HumanLabel("seven_day_" + l.Scope.Surface), nil
		}
		if l.Scope == nil || l.Scope.Model == nil {
			return "", "", fmt.Errorf("weekly_scoped limit without scope.model or scope.surface")
		}
		name := strings.TrimSpace(l.Scope.Model.DisplayName)
		if name == "" {
			name = strings.TrimSpace(l.Scope.Model.ID)
		}
		if name == "" {
			return "", "", fmt.Errorf("weekly_scoped limit without model id or display_name")
		}
		id, label := scopedMeter(name + " " + l.Scope.Model.ID)
		if id == "" {
			id, label = "weekly_"+SanitizeID(name), name+" only"
		}
		return trimID(id), label, nil
	case "":
		return "", "", fmt.Errorf("limit without kind")
	}
	id = SanitizeID(l.Kind)
	if id == "" {
		return "", "", fmt.Errorf("limit kind %q has no usable id", l.Kind)
	}
	return id, groupLabel(l.Kind, l.Group), nil
}

// scopedMeter maps a model name to the known per-model weekly meters.
func scopedMeter(name string) (id, label string) {
	n := strings.ToLower(name)
	switch {
	case strings.Contains(n, "sonnet"):
		return shared.MeterWeeklySonnet, LabelWeeklySonnet
	case strings.Contains(n, "opus"):
		return shared.MeterWeeklyOpus, LabelWeeklyOpus
	}
	return "", ""
}

func percent(raw json.RawMessage, field string) (float64, error) {
	if len(raw) == 0 {
		return 0, fmt.Errorf("%s is missing", field)
	}
	if isNull(raw) {
		return 0, fmt.Errorf("%s is null", field)
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, fmt.Errorf("%s is not a number: %s", field, clip(string(raw), 40))
	}
	if math.IsNaN(f) || f < 0 || f > 100 {
		return 0, fmt.Errorf("%s %g is outside 0-100", field, f)
	}
	return f, nil
}

func resetsAt(raw json.RawMessage) (*time.Time, error) {
	if len(raw) == 0 || isNull(raw) {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("resets_at is not a string: %s", clip(string(raw), 40))
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, fmt.Errorf("resets_at is not RFC 3339: %q", clip(s, 40))
	}
	t = t.UTC()
	return &t, nil
}

// objectFields decodes a JSON object keeping the order of its keys, so that
// unknown meters keep the order Claude sends them in.
func objectFields(body []byte) ([]string, map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, fmt.Errorf("parse: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fmt.Errorf("parse: body starts with %v, not an object", tok)
	}
	var keys []string
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("parse: %w", err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("parse: value of %q: %w", key, err)
		}
		if _, dup := fields[key]; !dup {
			keys = append(keys, key)
		}
		fields[key] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, fmt.Errorf("parse: %w", err)
	}
	return keys, fields, nil
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

var nonID = regexp.MustCompile(`[^a-z0-9]+`)

// SanitizeID makes s a meter id matching ^[a-z0-9_]{1,48}$, or "" when
// nothing usable is left.
func SanitizeID(s string) string {
	return trimID(strings.Trim(nonID.ReplaceAllString(strings.ToLower(s), "_"), "_"))
}

func trimID(id string) string {
	if len(id) > 48 {
		id = strings.TrimRight(id[:48], "_")
	}
	return id
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
