package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

func testScraperStatusSurvivesRestart(t *testing.T, b Backend) {
	loc := b.New(t)
	s := open(t, b, loc, Options{})
	ctx := context.Background()
	newer := shared.ScraperStatus{Account: "work", At: T0, OK: false, Category: "NOT_LOGGED_IN", Message: "log in again"}
	if kept, err := s.SaveScraperStatus(ctx, newer); err != nil || !kept {
		t.Fatalf("SaveScraperStatus = %v, %v; want kept", kept, err)
	}
	older := shared.ScraperStatus{Account: "work", At: T0.Add(-time.Minute), OK: true}
	if kept, err := s.SaveScraperStatus(ctx, older); err != nil || kept {
		t.Errorf("an older report: SaveScraperStatus = %v, %v; want not kept", kept, err)
	}
	same := newer
	same.Message = "log in again, please"
	if kept, err := s.SaveScraperStatus(ctx, same); err != nil || !kept {
		t.Errorf("a report of the same time: SaveScraperStatus = %v, %v; want kept", kept, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, b, loc, Options{})
	got, ok := s2.ScraperStatus("work")
	if !ok || !got.At.Equal(newer.At) || got.Category != newer.Category || got.Message != same.Message || got.OK {
		t.Errorf("after reopen ScraperStatus = %+v, %v; want %+v", got, ok, same)
	}
	if _, ok := s2.ScraperStatus("default"); ok {
		t.Error("an account without a report has one")
	}
	if st := s2.Status(); len(st.Scrapers) != 1 || st.Scrapers[0].Account != "work" || len(st.Accounts) != 0 {
		t.Errorf("Status scrapers %+v accounts %+v, want the one report and no accounts with versions", st.Scrapers, st.Accounts)
	}
}

// testScraperStatusRefused: a report the store cannot keep leaves memory
// as it was.
func testScraperStatusRefused(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := context.Background()
	good := shared.ScraperStatus{Account: "default", At: T0, OK: true}
	if _, err := s.SaveScraperStatus(ctx, good); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		st    shared.ScraperStatus
		field string
	}{
		{"year 10000", shared.ScraperStatus{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), OK: true}, "at"},
		{"year 1999", shared.ScraperStatus{At: time.Date(1999, 12, 31, 23, 0, 0, 0, time.UTC), OK: true}, "at"},
		{"no time", shared.ScraperStatus{OK: true}, "at"},
		{"bad account", shared.ScraperStatus{Account: "../x", At: T0.Add(time.Hour), OK: true}, "account"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kept, err := s.SaveScraperStatus(ctx, tc.st)
			var se *shared.Error
			if !errors.As(err, &se) || se.Code != shared.CodeValidationFailed || se.Field != tc.field || kept {
				t.Fatalf("SaveScraperStatus = %v, %v; want VALIDATION_FAILED naming %q", kept, err, tc.field)
			}
			if got, _ := s.ScraperStatus("default"); !got.At.Equal(good.At) {
				t.Errorf("memory holds %+v after a refused report, want the earlier one", got)
			}
		})
	}
}
