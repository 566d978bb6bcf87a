package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/shared"
)

func TestScraperStatusSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	ctx := context.Background()
	newer := shared.ScraperStatus{Account: "work", At: t0, OK: false, Category: "NOT_LOGGED_IN", Message: "log in again"}
	if kept, err := s.SaveScraperStatus(ctx, newer); err != nil || !kept {
		t.Fatalf("SaveScraperStatus = %v, %v; want kept", kept, err)
	}
	older := shared.ScraperStatus{Account: "work", At: t0.Add(-time.Minute), OK: true}
	if kept, err := s.SaveScraperStatus(ctx, older); err != nil || kept {
		t.Errorf("an older report: SaveScraperStatus = %v, %v; want not kept", kept, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The file is where and what earlier versions wrote, so their data
	// directories still load.
	if _, err := os.Stat(filepath.Join(dir, "work", "scraper-status.json")); err != nil {
		t.Fatal(err)
	}

	s2 := openTest(t, dir, nil)
	got, ok := s2.ScraperStatus("work")
	if !ok || !got.At.Equal(newer.At) || got.Category != newer.Category || got.Message != newer.Message || got.OK {
		t.Errorf("after reopen ScraperStatus = %+v, %v; want %+v", got, ok, newer)
	}
	if _, ok := s2.ScraperStatus("default"); ok {
		t.Error("an account without a report has one")
	}
	if st := s2.Status(); len(st.Scrapers) != 1 || st.Scrapers[0].Account != "work" || len(st.Accounts) != 0 {
		t.Errorf("Status scrapers %+v accounts %+v, want the one report and no accounts with versions", st.Scrapers, st.Accounts)
	}
}

// TestScraperStatusNothingHalfKept: a report the store cannot keep (a time
// outside 2000–9999, a failing disk) leaves memory as it was.
func TestScraperStatusNothingHalfKept(t *testing.T) {
	t.Parallel()
	ffs := newFaultFS()
	s := openTest(t, t.TempDir(), func(o *Options) { o.FS = ffs })
	ctx := context.Background()
	good := shared.ScraperStatus{Account: "default", At: t0, OK: true}
	if _, err := s.SaveScraperStatus(ctx, good); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		st    shared.ScraperStatus
		fault *testutil.Fault
		code  shared.Code
		field string
	}{
		{"year 10000", shared.ScraperStatus{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), OK: true}, nil, shared.CodeValidationFailed, "at"},
		{"year 1999", shared.ScraperStatus{At: time.Date(1999, 12, 31, 23, 0, 0, 0, time.UTC), OK: true}, nil, shared.CodeValidationFailed, "at"},
		{"year 9999 in +14:00 is 9999 in UTC", shared.ScraperStatus{At: time.Date(10000, 1, 1, 13, 0, 0, 0, time.FixedZone("", 14*3600)), OK: true}, &testutil.Fault{Op: "Rename", Err: syscall.EIO, Times: 1}, shared.CodeStorageWriteFailed, ""},
		{"no time", shared.ScraperStatus{OK: true}, nil, shared.CodeValidationFailed, "at"},
		{"disk full", shared.ScraperStatus{At: t0.Add(time.Hour), OK: true}, &testutil.Fault{Op: "Write", Err: syscall.ENOSPC, Times: -1}, shared.CodeStorageDiskFull, ""},
		{"read-only", shared.ScraperStatus{At: t0.Add(time.Hour), OK: true}, &testutil.Fault{Op: "CreateTemp", Err: syscall.EROFS, Times: -1}, shared.CodeStoragePermissionDenied, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ffs.Clear()
			if tc.fault != nil {
				ffs.Add(tc.fault)
			}
			kept, err := s.SaveScraperStatus(ctx, tc.st)
			var se *shared.Error
			if !errors.As(err, &se) || se.Code != tc.code || se.Field != tc.field || kept {
				t.Fatalf("SaveScraperStatus = %v, %v; want %s naming %q", kept, err, tc.code, tc.field)
			}
			if got, _ := s.ScraperStatus("default"); !got.At.Equal(good.At) {
				t.Errorf("memory holds %+v after a refused report, want the earlier one", got)
			}
			if sc := s.Status().Scrapers; len(sc) != 1 || !sc[0].At.Equal(good.At) {
				t.Errorf("Status().Scrapers = %+v, want only the earlier report", sc)
			}
		})
	}
}

func TestOpenRemovesObsoleteFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFixture(t, dir, "default", 2, t0)
	adir := filepath.Join(dir, "default")
	old := []string{"index.ckpt", "index.gob", ".scraper-status.json.tmp-1234", ".tmp-99"}
	for _, name := range old {
		if err := os.WriteFile(filepath.Join(adir, name), []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := openTest(t, dir, nil)
	for _, name := range old {
		if _, err := os.Stat(filepath.Join(adir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived Open (stat err %v)", name, err)
		}
	}
	if got, want := s.Count("default"), 2; got != want {
		t.Errorf("Count = %d, want %d", got, want)
	}
}
