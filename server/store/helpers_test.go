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
	"sync"
	"testing"
	"time"

	"github.com/rs/xid"

	"github.com/claude-usage/widget/shared"
)

// fakeClock is the injected Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sleeper records the waits asked for and returns at once.
type sleeper struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeper) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// fault makes faultFS fail (or block) an operation on matching paths.
type fault struct {
	op      string // MkdirAll, CreateTemp, Write, Sync, Close, Rename, Remove, ReadFile, ReadDir, Stat, Statfs, SyncDir
	path    string // substring of the path; "" matches every path
	err     error
	times   int           // failures left; < 0 = always
	block   chan struct{} // when set, the op waits for it to close, then proceeds
	entered chan struct{} // closed when the op first blocks
	once    sync.Once
}

// faultFS is the real filesystem with injected errors and a call log.
type faultFS struct {
	FS
	mu     sync.Mutex
	faults []*fault
	calls  []string
	free   *uint64 // fixed Statfs answer when set
}

func newFaultFS() *faultFS { return &faultFS{FS: OSFS()} }

func (f *faultFS) add(ft *fault) *fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ft.block != nil && ft.entered == nil {
		ft.entered = make(chan struct{})
	}
	f.faults = append(f.faults, ft)
	return ft
}

func (f *faultFS) clear() {
	f.mu.Lock()
	f.faults = nil
	f.mu.Unlock()
}

func (f *faultFS) setFree(n uint64) {
	f.mu.Lock()
	f.free = &n
	f.mu.Unlock()
}

// Calls returns the log of "op path" entries.
func (f *faultFS) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// count counts calls of op on paths containing sub.
func (f *faultFS) count(op, sub string) int {
	n := 0
	for _, c := range f.Calls() {
		o, p, _ := strings.Cut(c, " ")
		if o == op && strings.Contains(p, sub) {
			n++
		}
	}
	return n
}

func (f *faultFS) check(op, path string) error {
	f.mu.Lock()
	f.calls = append(f.calls, op+" "+path)
	var hit *fault
	for _, ft := range f.faults {
		if ft.op == op && strings.Contains(path, ft.path) && ft.times != 0 {
			hit = ft
			if ft.times > 0 {
				ft.times--
			}
			break
		}
	}
	f.mu.Unlock()
	if hit == nil {
		return nil
	}
	if hit.block != nil {
		hit.once.Do(func() { close(hit.entered) })
		<-hit.block
	}
	if hit.err == nil {
		return nil
	}
	return &fs.PathError{Op: strings.ToLower(op), Path: path, Err: hit.err}
}

func (f *faultFS) MkdirAll(path string, perm fs.FileMode) error {
	if err := f.check("MkdirAll", path); err != nil {
		return err
	}
	return f.FS.MkdirAll(path, perm)
}

func (f *faultFS) CreateTemp(dir, pattern string) (File, error) {
	if err := f.check("CreateTemp", filepath.Join(dir, pattern)); err != nil {
		return nil, err
	}
	file, err := f.FS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	if err := f.check("Rename", newpath); err != nil {
		return err
	}
	return f.FS.Rename(oldpath, newpath)
}

func (f *faultFS) Remove(path string) error {
	if err := f.check("Remove", path); err != nil {
		return err
	}
	return f.FS.Remove(path)
}

func (f *faultFS) ReadFile(path string) ([]byte, error) {
	if err := f.check("ReadFile", path); err != nil {
		return nil, err
	}
	return f.FS.ReadFile(path)
}

func (f *faultFS) ReadDir(path string) ([]fs.DirEntry, error) {
	if err := f.check("ReadDir", path); err != nil {
		return nil, err
	}
	return f.FS.ReadDir(path)
}

func (f *faultFS) Stat(path string) (fs.FileInfo, error) {
	if err := f.check("Stat", path); err != nil {
		return nil, err
	}
	return f.FS.Stat(path)
}

func (f *faultFS) Statfs(path string) (uint64, error) {
	if err := f.check("Statfs", path); err != nil {
		return 0, err
	}
	f.mu.Lock()
	free := f.free
	f.mu.Unlock()
	if free != nil {
		return *free, nil
	}
	return f.FS.Statfs(path)
}

func (f *faultFS) SyncDir(path string) error {
	if err := f.check("SyncDir", path); err != nil {
		return err
	}
	return f.FS.SyncDir(path)
}

type faultFile struct {
	File
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.check("Write", f.Name()); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *faultFile) Sync() error {
	if err := f.fs.check("Sync", f.Name()); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) Close() error {
	if err := f.fs.check("Close", f.Name()); err != nil {
		_ = f.File.Close()
		return err
	}
	return f.File.Close()
}

// testLogger discards logs unless STORE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("STORE_TEST_LOG") != "" {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

var t0 = time.Date(2026, 11, 28, 13, 50, 0, 0, time.UTC)

// openTest opens a store in dir with a fake clock and sleeper; mod may
// adjust the options. The store is closed at cleanup.
func openTest(t testing.TB, dir string, mod func(*Options)) (*FileStore, *fakeClock, *sleeper) {
	t.Helper()
	clk := newClock(t0)
	sl := &sleeper{}
	opts := Options{Dir: dir, Now: clk.Now, Sleep: sl.Sleep, Logger: testLogger()}
	if mod != nil {
		mod(&opts)
	}
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, clk, sl
}

func snap(account string, at time.Time, pct float64) shared.Snapshot {
	r := at.Add(3 * time.Hour)
	return shared.Snapshot{
		Account: account, ScrapedAt: at.UTC(), Source: "claude.ai/settings/usage", Capture: shared.CaptureAPI,
		Meters: []shared.Meter{
			{ID: shared.MeterSession, Label: "Current session", PercentUsed: pct, ResetsAt: &r, ResetsText: "Resets in 3 hr"},
			{ID: shared.MeterWeeklyAll, Label: "All models", PercentUsed: pct / 2},
			{ID: shared.MeterWeeklySonnet, Label: "Sonnet only", PercentUsed: 3},
		},
		ExtraUsage: &shared.ExtraUsage{Enabled: true, UsedCents: 1250, LimitCents: 5000, Currency: "USD"},
	}
}

func mustSave(t testing.TB, s *FileStore, sn shared.Snapshot) Version {
	t.Helper()
	res, err := s.Save(context.Background(), SaveRequest{Snapshot: sn})
	if err != nil {
		t.Fatalf("Save(%s): %v", sn.ScrapedAt.Format(time.RFC3339), err)
	}
	return res.Version
}

func codeOf(err error) shared.Code {
	var se *shared.Error
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
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
		if strings.HasPrefix(name, tmpPrefix) || strings.HasPrefix(name, probePrefix) {
			n++
		}
	}
	return n
}
