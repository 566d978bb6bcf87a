package server

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

// The encoded-answer cache must never serve an answer that differs from
// what encoding the current state would give.
func TestUsageAnswersFollowEveryChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustPost(snap("default", t0.Add(-time.Minute), 10))
	decode := func(r resp) shared.UsageResponse {
		t.Helper()
		if r.status != http.StatusOK {
			t.Fatalf("GET = %d %s", r.status, r.body)
		}
		var u shared.UsageResponse
		r.decode(t, &u)
		return u
	}
	first := e.get(shared.PathUsage)
	again := e.get(shared.PathUsage)
	if string(first.body) != string(again.body) || first.header.Get("ETag") != again.header.Get("ETag") {
		t.Fatalf("the same state gave two answers:\n%s\n%s", first.body, again.body)
	}
	if got := first.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}

	e.clock.Advance(time.Second)
	if got := decode(e.get(shared.PathUsage)).AgeSeconds; got != 61 {
		t.Errorf("ageSeconds after a second = %d, want 61", got)
	}

	e.clock.Advance(shared.StaleAfter)
	if u := decode(e.get(shared.PathUsage)); !u.IsStale {
		t.Errorf("isStale = false after %s", shared.StaleAfter)
	}

	e.mustPost(snap("default", e.clock.Now(), 20))
	if u := decode(e.get(shared.PathUsage)); u.VersionInfo.Current != 2 || u.IsStale || u.Meters[0].PercentUsed != 20 {
		t.Errorf("after a new version: current %d stale %v session %v", u.VersionInfo.Current, u.IsStale, u.Meters[0].PercentUsed)
	}
	if u := decode(e.get(shared.PathUsage + "?version=1")); u.VersionInfo.Current != 1 || u.VersionInfo.Total != 2 {
		t.Errorf("?version=1: current %d total %d, want 1 of 2", u.VersionInfo.Current, u.VersionInfo.Total)
	}

	e.mustPost(snap("work", e.clock.Now(), 5))
	if u := decode(e.get(shared.PathUsage)); len(u.Accounts) != 2 {
		t.Errorf("accounts after a second account = %v", u.Accounts)
	}

	before := e.get(shared.PathUsage)
	r := e.do(http.MethodPost, shared.PathScraperStatus,
		fmt.Sprintf(`{"account":"default","at":%q,"ok":false,"category":"NOT_LOGGED_IN","message":"log in again"}`, e.clock.Now().Format(time.RFC3339)),
		"Content-Type", "application/json", shared.HeaderAPIKey, testKey)
	if r.status != http.StatusNoContent {
		t.Fatalf("POST scraper-status = %d %s", r.status, r.body)
	}
	after := e.get(shared.PathUsage)
	if u := decode(after); u.Scraper == nil || u.Scraper.Category != "NOT_LOGGED_IN" {
		t.Errorf("scraper after a status report = %+v", u.Scraper)
	}
	if before.header.Get("ETag") == after.header.Get("ETag") {
		t.Error("the ETag did not change with the scraper status")
	}
}

func TestUsageCacheIsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := range 3 {
		e.mustPost(snap("default", t0.Add(time.Duration(i-3)*time.Minute), float64(i)))
	}
	for i := range usageCacheMax*2 + 7 {
		e.clock.Advance(time.Second) // a new ageSeconds: a new key each time
		if r := e.get(shared.PathUsage); r.status != http.StatusOK {
			t.Fatalf("GET = %d", r.status)
		}
		e.srv.usageCache.mu.Lock()
		n := len(e.srv.usageCache.m)
		e.srv.usageCache.mu.Unlock()
		if n > usageCacheMax {
			t.Fatalf("after %d requests the cache holds %d answers, want at most %d", i+1, n, usageCacheMax)
		}
	}
}
