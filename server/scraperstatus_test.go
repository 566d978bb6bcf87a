package server

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/shared"
)

// TestScraperStatusNothingHalfKept: a report whose time the server cannot
// keep (outside 2000–9999 once in UTC) is a 400 naming `at`, and a report
// the disk refuses is a storage error; either way the report held before
// stays the one GET and health answer with, and both keep answering 200.
func TestScraperStatusNothingHalfKept(t *testing.T) {
	t.Parallel()
	e, ffs := newFSEnv(t)
	e.mustPost(snap("default", t0, 5))
	post := func(body string) resp {
		t.Helper()
		return e.do(http.MethodPost, shared.PathScraperStatus, body,
			"Content-Type", "application/json", shared.HeaderAPIKey, testKey)
	}
	if r := post(`{"at":"2026-11-28T13:49:00Z","ok":true}`); r.status != http.StatusNoContent {
		t.Fatalf("first report = %d %s", r.status, r.body)
	}
	held := func(t *testing.T) {
		t.Helper()
		var u shared.UsageResponse
		r := e.get(shared.PathUsage)
		if r.status != http.StatusOK {
			t.Fatalf("GET usage = %d %s", r.status, r.body)
		}
		r.decode(t, &u)
		if u.Scraper == nil || !u.Scraper.OK || !u.Scraper.At.Equal(t0.Add(-time.Minute)) {
			t.Errorf("GET usage scraper = %+v, want the first report", u.Scraper)
		}
		if code, h := getHealth(t, e); code != http.StatusOK || h.Scraper.LastError != nil {
			t.Errorf("health = %d %+v", code, h.Scraper)
		}
	}
	bad := []struct{ name, at string }{
		{"year 1999", "1999-12-31T23:59:59Z"},
		{"year 2000 locally, 1999 in UTC", "2000-01-01T00:30:00+01:00"},
		{"year 0 locally, -1 in UTC", "0000-01-01T00:30:00+01:00"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			eb := wantError(t, post(`{"at":"`+tc.at+`","ok":false,"category":"NOT_LOGGED_IN"}`),
				http.StatusBadRequest, shared.CodeValidationFailed)
			if eb.Field != "at" {
				t.Errorf("field = %q, want at", eb.Field)
			}
			held(t)
		})
	}
	t.Run("disk full", func(t *testing.T) {
		ffs.Add(&testutil.Fault{Op: "Write", Err: syscall.ENOSPC, Times: -1})
		defer ffs.Clear()
		wantError(t, post(`{"at":"2026-11-28T13:50:00Z","ok":false,"category":"NOT_LOGGED_IN"}`),
			http.StatusInsufficientStorage, shared.CodeStorageDiskFull)
		ffs.Clear()
		held(t)
	})
}
