package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

// body builds a snapshot body around the given meters JSON and extra
// top-level fields, scraped at t0.
func body(meters string, extra ...string) string {
	fields := []string{`"account":"default"`, `"scrapedAt":"2026-11-28T13:50:00Z"`, `"capture":"api"`}
	if meters != "-" {
		fields = append(fields, `"meters":`+meters)
	}
	fields = append(fields, extra...)
	return "{" + strings.Join(fields, ",") + "}"
}

const m1 = `[{"id":"session","label":"Current session","percentUsed":42}]`

func manyMeters(n int) string {
	ms := make([]string, n)
	for i := range ms {
		ms[i] = fmt.Sprintf(`{"id":"m%d","label":"M %d","percentUsed":1}`, i, i)
	}
	return "[" + strings.Join(ms, ",") + "]"
}

func TestValidationThroughHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.clock.Set(t0.Add(time.Minute))
	long := func(n int) string { return strings.Repeat("x", n) }
	bad := []struct {
		name, body, field string
	}{
		{"empty object", `{}`, "scrapedAt"},
		{"empty body", ``, "body"},
		{"not JSON", `hello`, "body"},
		{"array", `[]`, "body"},
		{"two objects", body(m1) + body(m1), "body"},
		{"invalid UTF-8", "{\"account\":\"\xff\xfe\"}", "body"},
		{"missing meters", body("-"), "meters"},
		{"empty meters", body(`[]`), "meters"},
		{"meters not a list", body(`{}`), "meters"},
		{"33 meters", body(manyMeters(33)), "meters"},
		{"meter not an object", body(`[42]`), "meters[0]"},
		{"meter id upper case", body(`[{"id":"Session","label":"x","percentUsed":1}]`), "meters[0].id"},
		{"meter id dash", body(`[{"id":"weekly-all","label":"x","percentUsed":1}]`), "meters[0].id"},
		{"meter id 49 chars", body(`[{"id":"` + strings.Repeat("a", 49) + `","label":"x","percentUsed":1}]`), "meters[0].id"},
		{"meter id missing", body(`[{"label":"x","percentUsed":1}]`), "meters[0].id"},
		{"duplicate meter id", body(`[{"id":"a","label":"x","percentUsed":1},{"id":"a","label":"y","percentUsed":2}]`), "meters[1].id"},
		{"label empty", body(`[{"id":"a","label":"","percentUsed":1}]`), "meters[0].label"},
		{"label missing", body(`[{"id":"a","percentUsed":1}]`), "meters[0].label"},
		{"label 101 chars", body(`[{"id":"a","label":"` + long(101) + `","percentUsed":1}]`), "meters[0].label"},
		{"percent negative", body(`[{"id":"a","label":"x","percentUsed":-1}]`), "meters[0].percentUsed"},
		{"percent 140 on second meter", body(`[{"id":"a","label":"x","percentUsed":1},{"id":"b","label":"y","percentUsed":140}]`), "meters[1].percentUsed"},
		{"percent as string", body(`[{"id":"a","label":"x","percentUsed":1},{"id":"b","label":"y","percentUsed":"42"}]`), "meters[1].percentUsed"},
		{"percent overflows float", body(`[{"id":"a","label":"x","percentUsed":1e400}]`), "meters[0].percentUsed"},
		{"resetsAt not RFC 3339", body(`[{"id":"a","label":"x","percentUsed":1,"resetsAt":"tomorrow"}]`), "meters[0].resetsAt"},
		{"resetsAt a number", body(`[{"id":"a","label":"x","percentUsed":1},{"id":"b","label":"x","percentUsed":1,"resetsAt":1700000000}]`), "meters[1].resetsAt"},
		{"resetsText 201 chars", body(`[{"id":"a","label":"x","percentUsed":1,"resetsText":"` + long(201) + `"}]`), "meters[0].resetsText"},
		{"unknown meter field", body(`[{"id":"a","label":"x","percentUsed":1,"colour":"red"}]`), "meters[0].colour"},
		{"scrapedAt missing", `{"meters":` + m1 + `}`, "scrapedAt"},
		{"scrapedAt not a time", `{"scrapedAt":"yesterday","meters":` + m1 + `}`, "scrapedAt"},
		{"scrapedAt without zone", `{"scrapedAt":"2026-11-28T13:50:00","meters":` + m1 + `}`, "scrapedAt"},
		{"scrapedAt 6 min ahead", `{"scrapedAt":"2026-11-28T13:57:01Z","meters":` + m1 + `}`, "scrapedAt"},
		{"account upper case", `{"account":"Default","scrapedAt":"2026-11-28T13:50:00Z","meters":` + m1 + `}`, "account"},
		{"account path traversal", `{"account":"../../etc","scrapedAt":"2026-11-28T13:50:00Z","meters":` + m1 + `}`, "account"},
		{"account 65 chars", `{"account":"` + strings.Repeat("a", 65) + `","scrapedAt":"2026-11-28T13:50:00Z","meters":` + m1 + `}`, "account"},
		{"account a number", `{"account":7,"scrapedAt":"2026-11-28T13:50:00Z","meters":` + m1 + `}`, "account"},
		{"capture unknown", `{"capture":"ocr","scrapedAt":"2026-11-28T13:50:00Z","meters":` + m1 + `}`, "capture"},
		{"source 201 chars", body(m1, `"source":"`+long(201)+`"`), "source"},
		{"unknown top-level field", body(m1, `"secret":"x"`), "secret"},
		{"partial a string", body(m1, `"partial":"yes"`), "partial"},
		{"extraUsage negative used", body(m1, `"extraUsage":{"enabled":true,"usedCents":-1,"limitCents":5000}`), "extraUsage.usedCents"},
		{"extraUsage negative limit", body(m1, `"extraUsage":{"enabled":true,"usedCents":1,"limitCents":-5}`), "extraUsage.limitCents"},
		{"extraUsage fractional cents", body(m1, `"extraUsage":{"enabled":true,"usedCents":1.5}`), "extraUsage.usedCents"},
		{"extraUsage long currency", body(m1, `"extraUsage":{"currency":"DOLLARSXX"}`), "extraUsage.currency"},
		{"extraUsage unknown field", body(m1, `"extraUsage":{"enabled":true,"tax":1}`), "extraUsage.tax"},
		{"extractionErrors bad key", body(m1, `"extractionErrors":{"Weekly Opus":"missing"}`), "extractionErrors"},
		{"extractionErrors long reason", body(m1, `"extractionErrors":{"weekly_opus":"`+long(501)+`"}`), "extractionErrors.weekly_opus"},
		{"extractionErrors not strings", body(m1, `"extractionErrors":{"weekly_opus":1}`), "extractionErrors"},
	}
	if len(bad) < 25 {
		t.Fatalf("only %d bad bodies", len(bad))
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			eb := wantError(t, e.post(tt.body), http.StatusBadRequest, shared.CodeValidationFailed)
			if eb.Field != tt.field {
				t.Errorf("field = %q, want %q (message %q)", eb.Field, tt.field, eb.Message)
			}
			if !strings.Contains(eb.Message, tt.field) {
				t.Errorf("message %q does not name the field %q", eb.Message, tt.field)
			}
		})
	}
	if got := e.st.Count("default"); got != 0 {
		t.Errorf("%d bad bodies were stored", got)
	}

	good := []struct{ name, body string }{
		{"full contract example", `{"account":"default","scrapedAt":"2026-11-28T13:50:00Z","source":"claude.ai/settings/usage","capture":"api",
"meters":[{"id":"session","label":"Current session","percentUsed":42,"resetsAt":"2026-11-28T16:00:00Z","resetsText":"Resets in 2 hr 10 min"},
{"id":"weekly_all","label":"All models","percentUsed":18,"resetsAt":"2026-12-04T09:00:00Z"},
{"id":"weekly_sonnet","label":"Sonnet only","percentUsed":3,"resetsAt":"2026-12-04T09:00:00Z"}],
"extraUsage":{"enabled":true,"usedCents":1250,"limitCents":5000,"currency":"USD"},"partial":false,"extractionErrors":{}}`},
		{"minimal: account and capture default", `{"scrapedAt":"2026-11-28T13:49:00Z","meters":[{"id":"session","label":"S","percentUsed":0}]}`},
		{"unknown meter ids", `{"scrapedAt":"2026-11-28T13:48:00Z","meters":[{"id":"weekly_haiku_5","label":"Haiku 5 only","percentUsed":100},{"id":"daily_tokens","label":"Daily","percentUsed":12.5}]}`},
		{"32 meters", body(manyMeters(32))},
		{"partial with extraction errors", `{"scrapedAt":"2026-11-28T13:47:00Z","capture":"dom","partial":true,"extractionErrors":{"weekly_opus":"meter not found"},"meters":[{"id":"session","label":"S","percentUsed":5,"resetsAt":null}]}`},
		{"scrapedAt with offset, 4 min ahead", `{"scrapedAt":"2026-11-28T14:55:00+01:00","meters":[{"id":"session","label":"S","percentUsed":5}]}`},
		{"other account", `{"account":"me@example.com","scrapedAt":"2026-11-28T13:50:00Z","meters":[{"id":"session","label":"S","percentUsed":5}]}`},
	}
	for _, tt := range good {
		t.Run("good "+tt.name, func(t *testing.T) {
			if r := e.post(tt.body); r.status != http.StatusCreated {
				t.Fatalf("status = %d: %s", r.status, r.body)
			}
		})
	}
	var u shared.UsageResponse
	e.get(shared.PathUsage+"?timestamp=2026-11-28T13:48:00Z").decode(t, &u)
	if m, ok := u.Meter("weekly_haiku_5"); !ok || m.Label != "Haiku 5 only" || m.PercentUsed != 100 {
		t.Errorf("unknown meter not stored as sent: %+v", u.Meters)
	}
}

func TestScraperStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	post := func(b string) resp {
		return e.do(http.MethodPost, shared.PathScraperStatus, b, "Content-Type", "application/json", shared.HeaderAPIKey, testKey)
	}
	e.mustPost(snap("default", t0, 5))
	if r := post(`{"at":"2026-11-28T13:40:00Z","ok":true,"category":"OK"}`); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("status POST = %d: %s", r.status, r.body)
	}
	r := post(`{"account":"default","at":"2026-11-28T13:50:00Z","ok":false,"category":"NOT_LOGGED_IN","message":"redirected to /login"}`)
	if r.status != http.StatusNoContent {
		t.Fatalf("status POST = %d: %s", r.status, r.body)
	}
	// A report delivered late never hides the newer one.
	if r := post(`{"at":"2026-11-28T13:45:00Z","ok":true}`); r.status != http.StatusNoContent {
		t.Fatalf("late status POST = %d", r.status)
	}

	var u shared.UsageResponse
	e.get(shared.PathUsage).decode(t, &u)
	if u.Scraper == nil || u.Scraper.Category != "NOT_LOGGED_IN" || u.Scraper.OK || !u.Scraper.At.Equal(t0) {
		t.Errorf("usage scraper = %+v", u.Scraper)
	}
	var h shared.HealthResponse
	// The message is detail: it needs the read token (the category is public).
	e.do(http.MethodGet, shared.PathHealth, "", "Authorization", "Bearer "+testToken).decode(t, &h)
	if h.Scraper.LastSeen == nil || !h.Scraper.LastSeen.Equal(t0) {
		t.Errorf("health lastSeen = %v", h.Scraper.LastSeen)
	}
	if h.Scraper.LastError == nil || h.Scraper.LastError.Category != "NOT_LOGGED_IN" || h.Scraper.LastError.Message != "redirected to /login" {
		t.Errorf("health lastError = %+v", h.Scraper.LastError)
	}

	// It survives a restart: a new server on the same data dir reads it.
	srv2, err := New(Config{APIKey: testKey, PublicRead: true, Now: e.clock.Now}, e.st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv2.Close() })
	e2 := &env{t: t, srv: srv2}
	e2.do(http.MethodGet, shared.PathUsage, "").decode(t, &u)
	if u.Scraper == nil || u.Scraper.Category != "NOT_LOGGED_IN" {
		t.Errorf("after restart scraper = %+v", u.Scraper)
	}

	// Recovery clears lastError.
	if r := post(`{"at":"2026-11-28T13:51:00Z","ok":true,"category":"OK"}`); r.status != http.StatusNoContent {
		t.Fatal(r.status)
	}
	e.do(http.MethodGet, shared.PathHealth, "").decode(t, &h)
	if h.Scraper.LastError != nil {
		t.Errorf("lastError after a good scrape = %+v", h.Scraper.LastError)
	}

	bad := []struct{ name, body, field string }{
		{"no at", `{"ok":true}`, "at"},
		{"at in the future", `{"at":"2026-11-28T14:00:00Z","ok":true}`, "at"},
		{"bad account", `{"account":"X Y","at":"2026-11-28T13:50:00Z","ok":true}`, "account"},
		{"failure without category", `{"at":"2026-11-28T13:50:00Z","ok":false}`, "category"},
		{"lower-case category", `{"at":"2026-11-28T13:50:00Z","ok":false,"category":"oops"}`, "category"},
		{"long message", `{"at":"2026-11-28T13:50:00Z","ok":false,"category":"BROWSER","message":"` + strings.Repeat("m", 501) + `"}`, "message"},
		{"unknown field", `{"at":"2026-11-28T13:50:00Z","ok":true,"extra":1}`, "extra"},
		{"ok as string", `{"at":"2026-11-28T13:50:00Z","ok":"yes"}`, "ok"},
		{"not JSON", `nope`, "body"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			eb := wantError(t, post(tt.body), http.StatusBadRequest, shared.CodeValidationFailed)
			if eb.Field != tt.field {
				t.Errorf("field = %q, want %q (%s)", eb.Field, tt.field, eb.Message)
			}
		})
	}
	wantError(t, e.do(http.MethodPost, shared.PathScraperStatus, `{}`, shared.HeaderAPIKey, testKey),
		http.StatusUnsupportedMediaType, shared.CodeUnsupportedMediaType)
}
