package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/claude-usage/widget/internal/atomicfile"
	"github.com/claude-usage/widget/shared"
)

// Retention defaults: keep the last 100 versions or everything from the
// last 7 days, whichever keeps more (README, "The data directory").
const (
	DefaultRetentionVersions = 100
	DefaultRetentionDays     = 7
)

// Options configures Open. Zero values take the defaults.
type Options struct {
	Dir               string
	RetentionVersions int // keep at least the newest N versions per account (100)
	RetentionDays     int // and everything scraped in the last D days (7)
	HistoryDays       int // the rollup keeps hours and windows this long (400)
	FS                FS  // nil: the real filesystem
	Logger            *slog.Logger
}

// FileStore is the embedded Store: one JSON file per version under
// <Dir>/<account>/versions and an in-memory index that answers every read.
type FileStore struct {
	dir  string
	fs   FS
	log  *slog.Logger
	opts Options

	// life is the store's lifecycle, and ctx its Context: background work
	// (probes, retention, rollups, the recovery check, retry waits inside
	// probes) stops when Close cancels it. breaker is check's.
	life    *Lifecycle
	ctx     context.Context
	check   *WriteCheck
	breaker *shared.Breaker

	// writeSem lets one save at a time reach the disk, which makes the
	// idempotency check-then-write atomic.
	writeSem chan struct{}

	mu       sync.RWMutex // guards the fields below
	accounts map[string]*accountIndex
	idem     map[string]*idemRef
	nextSeq  uint64
	intern   interner
	madeDirs map[string]bool // account dirs created and synced by this process
	scrapers map[string]shared.ScraperStatus
	alerts   alertFiles  // the alert engine's files (alertstate.go)
	roll     rollupState // rollup.go; its maps are guarded by mu

	notify notifier // Subscribe's functions (notify.go)

	// statusSem orders scraper-status writes so that an older report never
	// overwrites a newer one on disk.
	statusSem chan struct{}

	// Guarded by check.Lock, so that Status reads them with the last write
	// check's result.
	freeBytes uint64
	corrupt   int
	lastErr   error

	newAccount sync.Mutex // accounts.go's

	retMu sync.Mutex // one retention run at a time
	kick  chan struct{}
}

type idemRef struct {
	account string
	e       *entry
}

var _ Store = (*FileStore)(nil)

// Files of an older version that are no longer read: the index checkpoint
// (a cache of the index, under its two names). They are removed at Open so
// that nobody mistakes them for data.
var obsoleteFiles = []string{"index.ckpt", "index.gob"}

// Open loads (and repairs) the store in opts.Dir: it removes orphaned tmp
// files and obsolete caches, quarantines corrupt files, rebuilds the index
// from the version files, runs the write check and starts retention. A
// failing write check does not fail Open: reads still work and Status
// reports the problem.
func Open(ctx context.Context, opts Options) (*FileStore, error) {
	if opts.Dir == "" {
		return nil, errors.New("storage: Options.Dir is required")
	}
	if opts.RetentionVersions <= 0 {
		opts.RetentionVersions = DefaultRetentionVersions
	}
	if opts.RetentionDays <= 0 {
		opts.RetentionDays = DefaultRetentionDays
	}
	if opts.HistoryDays <= 0 {
		opts.HistoryDays = DefaultHistoryDays
	}
	if opts.FS == nil {
		opts.FS = OSFS()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("storage: resolving %s: %w", opts.Dir, err)
	}
	s := &FileStore{
		dir:       dir,
		fs:        opts.FS,
		log:       opts.Logger.With("component", "store"),
		opts:      opts,
		writeSem:  make(chan struct{}, 1),
		statusSem: make(chan struct{}, 1),
		accounts:  make(map[string]*accountIndex),
		idem:      make(map[string]*idemRef),
		nextSeq:   1,
		intern:    make(interner),
		madeDirs:  make(map[string]bool),
		scrapers:  make(map[string]shared.ScraperStatus),
		roll:      newRollupState(opts.HistoryDays),
		kick:      make(chan struct{}, 1),
		life:      NewLifecycle(),
	}
	s.ctx = s.life.Context()
	s.check = NewWriteCheck(s.life, WriteCheckConfig{
		Probe: s.probe, Where: dir, LogKey: "dir", Subject: "storage",
		Unanswered: shared.CodeStorageWriteFailed, Log: s.log,
	})
	s.breaker = s.check.Breaker()
	if err := s.fs.MkdirAll(dir, 0o750); err != nil {
		return nil, s.writeError("creating", dir, err)
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	if err := s.CheckWritable(ctx); err != nil {
		s.log.Warn("storage is not writable; reads still work", "dir", dir, "error", err.Error())
	}
	s.life.Go(s.retentionLoop)
	s.check.StartRecovery()
	s.life.Go(s.rollupLoop)
	s.signalRetention()
	if len(s.roll.dirty) > 0 {
		s.signalRollup() // rollups rebuilt or caught up at load
	}
	return s, nil
}

// Dir is the absolute data directory.
func (s *FileStore) Dir() string { return s.dir }

// Close implements Store: it refuses new saves, waits for the ones in
// flight, then stops retention, the recovery check and any write check and
// waits for them.
func (s *FileStore) Close() error {
	s.life.Close()
	return nil
}

// load scans the data directory and builds the index.
func (s *FileStore) load(ctx context.Context) error {
	ents, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return s.readError("listing", s.dir, err)
	}
	for _, de := range ents {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("storage: opening %s: %w", s.dir, err)
		}
		name := de.Name()
		if strings.HasPrefix(name, probePrefix) || atomicfile.IsTmp(name) {
			s.removeOrphan(filepath.Join(s.dir, name))
			continue
		}
		if !de.IsDir() {
			continue
		}
		if !shared.AccountPattern.MatchString(name) {
			s.log.Warn("ignoring a directory that is not an account name", "dir", filepath.Join(s.dir, name))
			continue
		}
		if err := s.loadAccount(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

func (s *FileStore) removeOrphan(path string) {
	if err := s.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("could not remove an orphaned file", "path", path, "error", err.Error())
		return
	}
	s.log.Info("removed an orphaned file", "path", path)
}

// loadAccount sweeps one account directory (tmp files, obsolete caches),
// counts its quarantined files, reads its scraper status and indexes its
// versions.
func (s *FileStore) loadAccount(ctx context.Context, account string) error {
	adir := filepath.Join(s.dir, account)
	vdir := filepath.Join(adir, versionsDir)
	if ents, err := s.fs.ReadDir(adir); err == nil {
		for _, de := range ents {
			name := de.Name()
			if atomicfile.IsTmp(name) || strings.HasPrefix(name, legacyStatusTmp) || slices.Contains(obsoleteFiles, name) {
				s.removeOrphan(filepath.Join(adir, name))
			}
		}
	}
	if ents, err := s.fs.ReadDir(filepath.Join(adir, corruptDir)); err == nil {
		for _, de := range ents {
			if !de.IsDir() {
				s.corrupt++
			}
		}
	}
	s.loadScraperStatus(account)
	ents, err := s.fs.ReadDir(vdir)
	if errors.Is(err, fs.ErrNotExist) {
		s.loadRollup(account, nil)
		return nil
	}
	if err != nil {
		return s.readError("listing", vdir, err)
	}
	var files []string
	for _, de := range ents {
		name := de.Name()
		switch {
		case atomicfile.IsTmp(name):
			s.removeOrphan(filepath.Join(vdir, name))
		case de.IsDir():
		case isVersionName(name):
			files = append(files, name)
		case strings.HasSuffix(name, ".json"):
			s.quarantine(account, name, errors.New("file name is not <time>-<xid>.json"))
		default:
			s.log.Warn("ignoring a file that is not a version", "path", filepath.Join(vdir, name))
		}
	}
	parsed, err := s.readRecords(ctx, account, vdir, files)
	if err != nil {
		return err
	}
	ix := &accountIndex{entries: make([]*entry, 0, len(files))}
	ids := make(map[string]bool, len(files))
	for i, name := range files {
		r, perr := parsed[i].r, parsed[i].err
		if perr == nil && ids[r.ID] {
			perr = fmt.Errorf("duplicate id %s", r.ID)
		}
		if perr != nil {
			s.quarantine(account, name, perr)
			continue
		}
		ids[r.ID] = true
		s.intern.snapshot(&r.Snapshot)
		ix.entries = append(ix.entries, &entry{
			id: r.ID, seq: r.Seq, storedAt: r.StoredAt,
			key: r.IdempotencyKey, hash: r.BodyHash, snap: r.Snapshot,
		})
		if r.Seq >= s.nextSeq {
			s.nextSeq = r.Seq + 1
		}
	}
	slices.SortFunc(ix.entries, func(a, b *entry) int {
		switch {
		case a.before(b):
			return -1
		case b.before(a):
			return 1
		}
		return 0
	})
	for _, e := range ix.entries {
		if e.key == "" {
			continue
		}
		// Two files with one key cannot come from Save; keep the first.
		if old, ok := s.idem[e.key]; !ok || e.seq < old.e.seq {
			s.idem[e.key] = &idemRef{account: account, e: e}
		}
	}
	if len(ix.entries) > 0 {
		s.accounts[account] = ix
	}
	s.loadRollup(account, ix)
	s.log.Info("loaded account", "account", account, "versions", len(ix.entries))
	return nil
}

type parsed struct {
	r   record
	err error // the file's content is corrupt
}

// readRecords reads and parses files with a few workers: Open of a large
// store is bound by per-file syscalls, which overlap well. A read error (as
// opposed to a corrupt file) fails the whole load.
func (s *FileStore) readRecords(ctx context.Context, account, vdir string, files []string) ([]parsed, error) {
	out := make([]parsed, len(files))
	if len(files) == 0 {
		return out, nil
	}
	workers := min(4, len(files))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				path := filepath.Join(vdir, files[i])
				data, err := s.fs.ReadFile(path)
				if err != nil {
					cancel(s.readError("reading", path, err))
					continue
				}
				r, perr := parseRecord(data, account, files[i])
				out[i] = parsed{r: r, err: perr}
			}
		})
	}
feed:
	for i := range files {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		var se *shared.Error
		if errors.As(err, &se) {
			return nil, se
		}
		return nil, fmt.Errorf("storage: opening %s: %w", s.dir, err)
	}
	return out, nil
}

// quarantine moves a file that does not parse to <account>/corrupt/ so that
// it is neither lost nor read again.
func (s *FileStore) quarantine(account, name string, why error) {
	src := filepath.Join(s.dir, account, versionsDir, name)
	cdir := filepath.Join(s.dir, account, corruptDir)
	dst := filepath.Join(cdir, name)
	if _, err := s.fs.Stat(dst); err == nil {
		dst = fmt.Sprintf("%s.%d", dst, time.Now().UnixNano())
	}
	err := s.fs.MkdirAll(cdir, 0o750)
	if err == nil {
		err = s.fs.Rename(src, dst)
	}
	s.corrupt++
	if err != nil {
		s.log.Error("corrupt version file could not be moved; it is skipped", "path", src,
			"reason", why.Error(), "error", err.Error())
		return
	}
	s.log.Error("corrupt version file moved to quarantine", "path", src, "to", dst, "reason", why.Error())
}
