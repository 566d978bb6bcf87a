package store

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/atomicfile"
	"github.com/claude-usage/widget/internal/testutil"
)

func TestOpenRemovesOrphanedTmpFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFixture(t, dir, "default", 3, t0)
	vdir := filepath.Join(dir, "default", versionsDir)
	orphans := []string{
		filepath.Join(vdir, atomicfile.TmpPrefix+"123456"),
		filepath.Join(vdir, atomicfile.TmpPrefix+"half-written"),
		filepath.Join(dir, probePrefix+"987"),
	}
	for _, p := range orphans {
		if err := os.WriteFile(p, []byte(`{"schema":1,"id":"trunc`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := openTest(t, dir, nil)
	for _, p := range orphans {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("orphan %s still exists (stat err %v)", p, err)
		}
	}
	if got, want := s.Count("default"), 3; got != want {
		t.Errorf("Count = %d, want %d", got, want)
	}
	if got, want := s.Status().CorruptFiles, 0; got != want {
		t.Errorf("CorruptFiles = %d, want %d (tmp files are not corrupt versions)", got, want)
	}
}

func TestOpenQuarantinesCorruptFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFixture(t, dir, "default", 2, t0)
	vdir := filepath.Join(dir, "default", versionsDir)
	at := t0.Add(time.Hour)
	bad := map[string]string{
		fileName(at, "aaaaaaaaaaaaaaaaaaaa"): `{"schema":1,"id":"aaaaaaaaaaaaaaaaaaaa",`, // truncated
		fileName(at, "bbbbbbbbbbbbbbbbbbbb"): `{"schema":2,"id":"bbbbbbbbbbbbbbbbbbbb"}`, // unknown schema
		fileName(at, "cccccccccccccccccccc"): `[1,2,3]`,
		fileName(at, "dddddddddddddddddddd"): `{"schema":1,"id":"eeeeeeeeeeeeeeeeeeee","seq":1,"storedAt":"2026-11-28T13:50:00Z","snapshot":{}}`,
		fileName(at, "ffffffffffffffffffff"): `{"schema":1,"id":"ffffffffffffffffffff","seq":1,"storedAt":"2026-11-28T13:50:00Z",` +
			`"snapshot":{"account":"other","scrapedAt":"2026-11-28T14:50:00Z","capture":"api","meters":[{"id":"session","label":"S","percentUsed":1}]}}`,
		fileName(at, "gggggggggggggggggggg"): `{"schema":1,"id":"gggggggggggggggggggg","seq":1,"storedAt":"2026-11-28T13:50:00Z",` +
			`"snapshot":{"account":"default","scrapedAt":"2026-11-28T14:50:00Z","capture":"api","meters":[{"id":"session","label":"S","percentUsed":140}]}}`,
		"not-a-version.json": `{}`,
	}
	for name, body := range bad {
		if err := os.WriteFile(filepath.Join(vdir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(vdir, "README"), []byte("notes"), 0o600); err != nil {
		t.Fatal(err)
	}

	logs := &testutil.LogBuffer{}
	s := openTest(t, dir, withLog(logs))
	if got, want := s.Count("default"), 2; got != want {
		t.Errorf("Count = %d, want %d", got, want)
	}
	if got, want := s.Status().CorruptFiles, len(bad); got != want {
		t.Errorf("CorruptFiles = %d, want %d", got, want)
	}
	if got, want := len(testutil.LogRecords(t, logs.String(), "corrupt version file moved to quarantine")), len(bad); got != want {
		t.Errorf("quarantine log lines = %d, want %d", got, want)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "default", corruptDir))
	if err != nil {
		t.Fatal(err)
	}
	var quarantined []string
	for _, e := range ents {
		quarantined = append(quarantined, e.Name())
	}
	var want []string
	for name := range bad {
		want = append(want, name)
	}
	slices.Sort(want)
	if !slices.Equal(quarantined, want) {
		t.Errorf("corrupt/ holds %v, want %v", quarantined, want)
	}
	if _, err := os.Stat(filepath.Join(vdir, "README")); err != nil {
		t.Errorf("a file that is not a version was touched: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening still reports the quarantined files but does not count them
	// as new ones.
	logs.Reset()
	s2 := openTest(t, dir, withLog(logs))
	if got, want := s2.Status().CorruptFiles, len(bad); got != want {
		t.Errorf("after reopen CorruptFiles = %d, want %d", got, want)
	}
	if got := len(testutil.LogRecords(t, logs.String(), "corrupt version file moved to quarantine")); got != 0 {
		t.Errorf("after reopen %d files quarantined again, want 0", got)
	}
	if _, err := s2.Latest(context.Background(), "default"); err != nil {
		t.Errorf("Latest after reopen: %v", err)
	}
}

func TestOpenIgnoresNonAccountDirs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFixture(t, dir, "default", 1, t0)
	writeFixture(t, dir, "Not_An_Account", 1, t0)
	s := openTest(t, dir, nil)
	if got, want := s.Accounts(), []string{"default"}; !slices.Equal(got, want) {
		t.Errorf("Accounts = %v, want %v", got, want)
	}
}

func TestOpenNeedsDir(t *testing.T) {
	t.Parallel()
	if _, err := Open(context.Background(), Options{}); err == nil {
		t.Error("Open without Dir succeeded")
	}
}
