package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/xid"

	"github.com/claude-usage/widget/internal/atomicfile"
	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/shared"
)

// testLogger discards logs unless STORE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("STORE_TEST_LOG") != "" {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

var t0 = time.Date(2026, 11, 28, 13, 50, 0, 0, time.UTC)

// openTest opens a store in dir; mod may adjust the options. The store is
// closed at cleanup (inside the bubble when called in one).
func openTest(t testing.TB, dir string, mod func(*Options)) *FileStore {
	t.Helper()
	opts := Options{Dir: dir, Logger: testLogger()}
	if mod != nil {
		mod(&opts)
	}
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newFaultFS is the real filesystem with injected faults.
func newFaultFS() *testutil.FaultFS { return testutil.NewFaultFS(OSFS()) }

// bubble runs f in a synctest bubble whose clock reads t0, so that the
// store's retention, breaker and probes run on a fake clock.
func bubble(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(time.Until(t0))
		f(t)
	})
}

// transitions lists the store breaker's logged transitions as FROM->TO.
func transitions(t testing.TB, b *testutil.LogBuffer) []string {
	t.Helper()
	var out []string
	for _, m := range testutil.LogRecords(t, b.String(), "store breaker transition") {
		out = append(out, fmt.Sprint(m["from"], "->", m["to"]))
	}
	return out
}

// withLog sends the store's log to a buffer.
func withLog(b *testutil.LogBuffer) func(*Options) {
	return func(o *Options) { o.Logger = slog.New(slog.NewJSONHandler(b, nil)) }
}

// snap and codeOf are the helpers storetest shares with these tests.
var (
	snap   = testutil.Snap
	codeOf = testutil.CodeOf
)

func mustSave(t testing.TB, s *FileStore, sn shared.Snapshot) Version {
	t.Helper()
	res, err := s.Save(context.Background(), SaveRequest{Snapshot: sn})
	if err != nil {
		t.Fatalf("Save(%s): %v", sn.ScrapedAt.Format(time.RFC3339), err)
	}
	return res.Version
}

// writeFixture writes n version files for account directly (no fsync), one
// minute apart ending at end, so that large stores are quick to set up.
func writeFixture(t testing.TB, dir, account string, n int, end time.Time) {
	t.Helper()
	vdir := filepath.Join(dir, account, versionsDir)
	if err := os.MkdirAll(vdir, 0o750); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		at := end.Add(-time.Duration(n-1-i) * time.Minute)
		r := record{Schema: recordSchema, ID: xid.New().String(), StoredAt: at.Add(time.Second), Seq: uint64(i + 1),
			IdempotencyKey: fmt.Sprintf("fixture-%d", i), BodyHash: "h", Snapshot: snap(account, at, float64(i%100))}
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(vdir, fileName(at, r.ID)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// listVersions lists the names in an account's versions directory.
func listVersions(t testing.TB, dir, account string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, account, versionsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func countTmp(names []string) int {
	n := 0
	for _, name := range names {
		if atomicfile.IsTmp(name) || strings.HasPrefix(name, probePrefix) {
			n++
		}
	}
	return n
}
