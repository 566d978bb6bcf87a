package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/xid"

	"github.com/claude-usage/widget/shared"
)

// Defaults from DESIGN.md.
const (
	DefaultRetentionVersions = 100
	DefaultRetentionDays     = 7
)

// RetryWaits are the waits before the retries of a transient filesystem
// error (EBUSY, EAGAIN, EINTR, ETIMEDOUT): 1 attempt + 3 retries.
var RetryWaits = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}

// Options configures Open. Zero values take the defaults.
type Options struct {
	Dir               string
	RetentionVersions int // keep at least the newest N versions per account (100)
	RetentionDays     int // and everything scraped in the last D days (7)
	Now               func() time.Time
	FS                FS // nil: the real filesystem
	Logger            *slog.Logger
	// Sleep waits between retries; nil uses a timer that honours ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// OnTransition is called on every store breaker state change.
	OnTransition func(shared.Transition)
	// OnWrite is called after each Save that reached the disk (or was
	// refused by the breaker) with its duration and error code ("" = ok).
	OnWrite func(d time.Duration, code shared.Code)
	// OnCorrupt is called for each file quarantined at Open.
	OnCorrupt func(account string)
	// OnRetention is called after retention removed versions of an account.
	OnRetention func(account string, removed int)
}

// FileStore is the embedded Store: one JSON file per version under
// <Dir>/<account>/versions and an in-memory index that answers every read.
type FileStore struct {
	dir     string
	fs      FS
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) error
	log     *slog.Logger
	opts    Options
	breaker *shared.Breaker

	// ctx lives as long as the store; background work (probes, retention,
	// retry waits inside probes) stops when Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	// writeSem lets one save at a time reach the disk, which makes the
	// idempotency check-then-write atomic.
	writeSem chan struct{}

	mu       sync.RWMutex // guards the fields below
	accounts map[string]*accountIndex
	idem     map[string]*idemRef
	nextSeq  uint64
	intern   interner
	madeDirs map[string]bool // account dirs created and synced by this process
	cpDirty  map[string]int  // index changes per account since its checkpoint

	stMu       sync.Mutex // guards the cached status below
	writable   bool
	writeErr   error
	freeBytes  uint64
	corrupt    int
	lastErr    error
	probe      *probeCall
	probeStart time.Time

	retMu sync.Mutex // one retention run at a time
	cpMu  sync.Mutex // one checkpoint writer at a time
	kick  chan struct{}

	closeMu  sync.RWMutex
	closed   bool
	inflight sync.WaitGroup // saves
	bg       sync.WaitGroup // retention loop and probes
}

type idemRef struct {
	account string
	e       *entry
}

type probeCall struct {
	done chan struct{}
	err  error
}

var _ Store = (*FileStore)(nil)

// Open loads (and repairs) the store in opts.Dir: it removes orphaned tmp
// files, quarantines corrupt ones, rebuilds the index, runs the write check
// and starts retention. A failing write check does not fail Open: reads
// still work and Status reports the problem.
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
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.FS == nil {
		opts.FS = OSFS()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Sleep == nil {
		opts.Sleep = sleepCtx
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("storage: resolving %s: %w", opts.Dir, err)
	}
	s := &FileStore{
		dir:      dir,
		fs:       opts.FS,
		now:      opts.Now,
		sleep:    opts.Sleep,
		log:      opts.Logger.With("component", "store"),
		opts:     opts,
		writeSem: make(chan struct{}, 1),
		accounts: make(map[string]*accountIndex),
		idem:     make(map[string]*idemRef),
		nextSeq:  1,
		intern:   make(interner),
		madeDirs: make(map[string]bool),
		cpDirty:  make(map[string]int),
		kick:     make(chan struct{}, 1),
	}
	s.breaker = shared.NewBreaker(shared.BreakerConfig{
		Name: "store", Now: opts.Now, OnTransition: s.onTransition,
	})
	if err := s.fs.MkdirAll(dir, 0o750); err != nil {
		return nil, s.writeError("creating", dir, err)
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.CheckWritable(ctx); err != nil {
		s.log.Warn("storage is not writable; reads still work", "dir", dir, "error", err.Error())
	}
	s.bg.Add(1)
	go s.retentionLoop()
	s.signalRetention()
	return s, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *FileStore) onTransition(t shared.Transition) {
	s.log.Warn("store breaker transition", "from", t.From.String(), "to", t.To.String(),
		"failures", t.Failures, "at", t.At.UTC())
	if s.opts.OnTransition != nil {
		s.opts.OnTransition(t)
	}
}

// Dir is the absolute data directory.
func (s *FileStore) Dir() string { return s.dir }

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
		if strings.HasPrefix(name, probePrefix) || strings.HasPrefix(name, tmpPrefix) {
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
		s.log.Warn("could not remove an orphaned tmp file", "path", path, "error", err.Error())
		return
	}
	s.log.Info("removed an orphaned tmp file", "path", path)
}

func (s *FileStore) loadAccount(ctx context.Context, account string) error {
	adir := filepath.Join(s.dir, account)
	vdir := filepath.Join(adir, versionsDir)
	cdir := filepath.Join(adir, corruptDir)
	if ents, err := s.fs.ReadDir(adir); err == nil {
		for _, de := range ents {
			if strings.HasPrefix(de.Name(), tmpPrefix) {
				s.removeOrphan(filepath.Join(adir, de.Name()))
			}
		}
	}
	if ents, err := s.fs.ReadDir(cdir); err == nil {
		for _, de := range ents {
			if !de.IsDir() {
				s.corrupt++
			}
		}
	}
	// The checkpoint is read and decoded while the directory is listed:
	// the two are independent and together most of a restart.
	type checkpointRead struct {
		recs []record
		byID map[string]int
	}
	cpc := make(chan checkpointRead, 1)
	go func() {
		recs, byID := s.readCheckpoint(account)
		cpc <- checkpointRead{recs, byID}
	}()
	ents, err := s.fs.ReadDir(vdir)
	cpr := <-cpc
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return s.readError("listing", vdir, err)
	}
	var files []string
	for _, de := range ents {
		name := de.Name()
		switch {
		case strings.HasPrefix(name, tmpPrefix):
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
	// Versions the checkpoint knows are not read again; the rest are.
	cp, cpByID := cpr.recs, cpr.byID
	parsed := make([]parsed, len(files))
	var toRead []int
	for i, name := range files {
		if r, ok := checkpointed(cp, cpByID, name); ok {
			parsed[i].r, parsed[i].fromCheckpoint = r, true
			continue
		}
		toRead = append(toRead, i)
	}
	if len(toRead) > 0 {
		names := make([]string, len(toRead))
		for j, i := range toRead {
			names[j] = files[i]
		}
		read, err := s.readRecords(ctx, account, vdir, names)
		if err != nil {
			return err
		}
		for j, i := range toRead {
			parsed[i] = read[j]
		}
	}
	if cp == nil || len(toRead) > 0 || len(cp) != len(files)-len(toRead) {
		// Rewritten by the first background run after Open.
		s.cpDirty[account] = checkpointEvery
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
		if !parsed[i].fromCheckpoint {
			// Checkpoint records share their strings already (codec.go).
			s.intern.snapshot(&r.Snapshot)
		}
		ix.entries = append(ix.entries, &entry{
			id: r.ID, seq: r.Seq, storedAt: r.StoredAt,
			key: r.IdempotencyKey, hash: r.BodyHash, snap: r.Snapshot,
		})
		if r.Seq >= s.nextSeq {
			s.nextSeq = r.Seq + 1
		}
	}
	sort.Slice(ix.entries, func(i, j int) bool { return ix.entries[i].before(ix.entries[j]) })
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
	s.log.Info("loaded account", "account", account, "versions", len(ix.entries),
		"fromCheckpoint", len(files)-len(toRead), "fromFiles", len(toRead))
	return nil
}

type parsed struct {
	r              record
	err            error // the file's content is corrupt
	fromCheckpoint bool
}

// readRecords reads and parses files with a few workers: Open of a large
// store is bound by per-file syscalls, which overlap well. A read error (as
// opposed to a corrupt file) fails the whole load.
func (s *FileStore) readRecords(ctx context.Context, account, vdir string, files []string) ([]parsed, error) {
	out := make([]parsed, len(files))
	workers := min(4, len(files))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
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
		}()
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
		dst = fmt.Sprintf("%s.%d", dst, s.now().UnixNano())
	}
	err := s.fs.MkdirAll(cdir, 0o750)
	if err == nil {
		err = s.fs.Rename(src, dst)
	}
	s.corrupt++
	if s.opts.OnCorrupt != nil {
		s.opts.OnCorrupt(account)
	}
	if err != nil {
		s.log.Error("corrupt version file could not be moved; it is skipped", "path", src,
			"reason", why.Error(), "error", err.Error())
		return
	}
	s.log.Error("corrupt version file moved to quarantine", "path", src, "to", dst, "reason", why.Error())
}

func normAccount(account string) (string, error) {
	if account == "" {
		return shared.DefaultAccount, nil
	}
	if !shared.AccountPattern.MatchString(account) {
		e := shared.Errorf(shared.CodeInvalidQuery, "account must match %s", shared.AccountPattern)
		e.Field = "account"
		return "", e
	}
	return account, nil
}

func noData(account string) error {
	return shared.Errorf(shared.CodeNoData, "no usage data stored for account %q yet", account)
}

// Latest implements Store.
func (s *FileStore) Latest(_ context.Context, account string) (Version, error) {
	account, err := normAccount(account)
	if err != nil {
		return Version{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix := s.accounts[account]
	if ix == nil || len(ix.entries) == 0 {
		return Version{}, noData(account)
	}
	return ix.version(len(ix.entries) - 1), nil
}

// ByNumber implements Store.
func (s *FileStore) ByNumber(_ context.Context, account string, n int) (Version, error) {
	account, err := normAccount(account)
	if err != nil {
		return Version{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix := s.accounts[account]
	if ix == nil || len(ix.entries) == 0 {
		return Version{}, noData(account)
	}
	total := len(ix.entries)
	i := n - 1
	if n < 0 {
		i = total + n
	}
	if n == 0 || i < 0 || i >= total {
		e := shared.Errorf(shared.CodeVersionNotFound, "version %d not found; valid: 1..%d or -%d..-1", n, total, total)
		e.Field = "version"
		return Version{}, e
	}
	return ix.version(i), nil
}

// Nearest implements Store.
func (s *FileStore) Nearest(_ context.Context, account string, t time.Time) (Version, error) {
	account, err := normAccount(account)
	if err != nil {
		return Version{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix := s.accounts[account]
	if ix == nil || len(ix.entries) == 0 {
		return Version{}, noData(account)
	}
	return ix.version(ix.nearest(t)), nil
}

// History implements Store. limit <= 0 means no limit.
func (s *FileStore) History(_ context.Context, account string, since time.Time, limit int) ([]Version, error) {
	account, err := normAccount(account)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix := s.accounts[account]
	if ix == nil || len(ix.entries) == 0 {
		return nil, noData(account)
	}
	n := len(ix.entries)
	start := 0
	if !since.IsZero() {
		start = sort.Search(n, func(i int) bool { return !ix.entries[i].scrapedAt().Before(since) })
	}
	if limit > 0 && n-start > limit {
		start = n - limit
	}
	out := make([]Version, 0, n-start)
	for i := start; i < n; i++ {
		out = append(out, ix.version(i))
	}
	return out, nil
}

// Accounts implements Store.
func (s *FileStore) Accounts() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.accounts))
	for a, ix := range s.accounts {
		if len(ix.entries) > 0 {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

// Count implements Store.
func (s *FileStore) Count(account string) int {
	if account == "" {
		account = shared.DefaultAccount
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ix := s.accounts[account]; ix != nil {
		return len(ix.entries)
	}
	return 0
}

// Status implements Store. It reads only cached values.
func (s *FileStore) Status() Status {
	s.stMu.Lock()
	st := Status{
		Dir: s.dir, Writable: s.writable, WriteErr: s.writeErr,
		FreeBytes: s.freeBytes, CorruptFiles: s.corrupt,
	}
	if s.probe != nil {
		// A write check that hangs is itself the answer: the disk is not
		// usable right now, whatever the last finished check said.
		if d := s.now().Sub(s.probeStart); d > time.Second {
			st.Writable = false
			st.WriteErr = shared.Errorf(shared.CodeStorageWriteFailed,
				"storage: write check of %s has not answered for %s", s.dir, d.Truncate(time.Second))
		}
	}
	s.stMu.Unlock()
	st.Breaker = s.breaker.State()
	return st
}

// Close implements Store: it refuses new saves, waits for the ones in
// flight, then stops retention and any write check and waits for them.
func (s *FileStore) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.closeMu.Unlock()
	s.inflight.Wait()
	s.cancel()
	s.bg.Wait()
	s.writeCheckpoints(1)
	return nil
}

// CheckWritable implements Store: canWriteToStorage. Concurrent callers
// share one probe; a caller whose ctx ends stops waiting while the probe
// finishes in the background (a hung syscall cannot be interrupted).
func (s *FileStore) CheckWritable(ctx context.Context) error {
	// closeMu keeps a probe from starting once Close waits for background
	// work: a probe after Close would outlive the store.
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return shared.Errorf(shared.CodeStorageUnavailable, "storage: the store is closed")
	}
	p := s.startProbe()
	s.closeMu.RUnlock()
	return s.waitProbe(ctx, p)
}

// checkWritable is CheckWritable for a Save in flight: Close waits for
// saves before it waits for background work, so the probe may start even
// while Close is waiting.
func (s *FileStore) checkWritable(ctx context.Context) error {
	return s.waitProbe(ctx, s.startProbe())
}

// startProbe starts a probe or joins the one in flight.
func (s *FileStore) startProbe() *probeCall {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	if s.probe == nil {
		s.probe = &probeCall{done: make(chan struct{})}
		s.probeStart = s.now()
		s.bg.Add(1)
		go s.runProbe(s.probe)
	}
	return s.probe
}

func (s *FileStore) waitProbe(ctx context.Context, p *probeCall) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return &shared.Error{
			Code:    shared.CodeStorageWriteFailed,
			Message: fmt.Sprintf("storage: write check of %s did not answer in time", s.dir),
			Err:     ctx.Err(),
		}
	}
}

func (s *FileStore) runProbe(p *probeCall) {
	defer s.bg.Done()
	var serr *shared.Error
	if err := s.retry(s.ctx, "probe", s.probeOnce); err != nil {
		serr = s.writeError("writing a probe file in", s.dir, err)
	}
	free, ferr := s.fs.Statfs(s.dir)
	s.stMu.Lock()
	if ferr == nil {
		s.freeBytes = free
	}
	if serr != nil {
		s.writable, s.writeErr, p.err = false, serr, serr
	} else {
		s.writable, s.writeErr = true, nil
	}
	s.probe = nil
	s.stMu.Unlock()
	close(p.done)
}

func (s *FileStore) probeOnce() error {
	if err := s.fs.MkdirAll(s.dir, 0o750); err != nil {
		return err
	}
	f, err := s.fs.CreateTemp(s.dir, probePrefix+"*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, werr := f.Write([]byte("usage-server write check\n"))
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	rerr := s.fs.Remove(name)
	return errors.Join(werr, cerr, rerr)
}

// retry runs op and retries transient errors with RetryWaits. Other errors
// return at once.
func (s *FileStore) retry(ctx context.Context, what string, op func() error) error {
	for attempt := 0; ; attempt++ {
		err := op()
		if err == nil {
			return nil
		}
		if classifyErr(err) != kindTransient || attempt >= len(RetryWaits) {
			return err
		}
		d := RetryWaits[attempt]
		s.log.Warn("transient storage error, retrying", "op", what, "attempt", attempt+1,
			"delayMs", d.Milliseconds(), "error", err.Error())
		if serr := s.sleep(ctx, d); serr != nil {
			return errors.Join(err, serr)
		}
	}
}

// Save implements Store. Keys are remembered as long as their version is
// kept: once retention removed a version its key is forgotten, which is
// harmless because a replay of it is older than what retention keeps and is
// removed again by the next run.
func (s *FileStore) Save(ctx context.Context, req SaveRequest) (SaveResult, error) {
	snap := req.Snapshot
	if snap.Account == "" {
		snap.Account = shared.DefaultAccount
	}
	if !shared.AccountPattern.MatchString(snap.Account) {
		return SaveResult{}, errValidation("account", "account must match %s", shared.AccountPattern)
	}
	snap.ScrapedAt = snap.ScrapedAt.UTC()
	if y := snap.ScrapedAt.Year(); snap.ScrapedAt.IsZero() || y < 1 || y > 9999 {
		return SaveResult{}, errValidation("scrapedAt", "scrapedAt must be a time between years 1 and 9999")
	}
	// Every file written must load again at Open, where the same check runs:
	// a snapshot that slipped past the caller's validation would otherwise
	// be stored now and quarantined at the next restart.
	if err := snap.Validate(snap.ScrapedAt); err != nil {
		var ve *shared.ValidationError
		field := ""
		if errors.As(err, &ve) {
			field = ve.Field()
		}
		return SaveResult{}, errValidation(field, "snapshot: %s", err.Error())
	}
	if len(req.IdempotencyKey) > maxKeyLen || len(req.BodyHash) > maxHashLen {
		return SaveResult{}, errValidation("Idempotency-Key", "idempotency key must be at most %d characters", maxKeyLen)
	}

	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return SaveResult{}, shared.Errorf(shared.CodeStorageUnavailable, "storage: the store is closed")
	}
	s.inflight.Add(1)
	s.closeMu.RUnlock()
	defer s.inflight.Done()

	// A replay needs no disk, so it works even while storage fails.
	if res, ok, err := s.replay(snap.Account, req); ok {
		return res, err
	}
	select {
	case s.writeSem <- struct{}{}:
	case <-ctx.Done():
		return SaveResult{}, &shared.Error{Code: shared.CodeStorageUnavailable,
			Message: "storage: gave up waiting for an earlier write to finish", Err: ctx.Err()}
	}
	defer func() { <-s.writeSem }()
	if res, ok, err := s.replay(snap.Account, req); ok {
		return res, err
	}

	start := time.Now()
	done, err := s.breaker.Allow()
	if err != nil {
		s.stMu.Lock()
		last := s.lastErr
		s.stMu.Unlock()
		msg := fmt.Sprintf("storage: not writing after %d consecutive failures; next attempt in %s",
			s.breaker.Failures(), s.breaker.RetryIn().Round(time.Second))
		if last != nil {
			var se *shared.Error
			if errors.As(last, &se) {
				msg += "; last error: " + se.Message
			}
		}
		s.observe(start, shared.CodeStorageUnavailable)
		return SaveResult{}, &shared.Error{Code: shared.CodeStorageUnavailable, Message: msg, Err: last}
	}
	v, err := s.write(ctx, snap, req)
	done(err == nil)
	s.stMu.Lock()
	s.lastErr = err
	s.stMu.Unlock()
	if err != nil {
		var se *shared.Error
		code := shared.CodeStorageWriteFailed
		if errors.As(err, &se) {
			code = se.Code
		}
		s.observe(start, code)
		s.log.Error("save failed", "account", snap.Account, "code", string(code),
			"durationMs", time.Since(start).Milliseconds(), "error", err.Error())
		return SaveResult{}, err
	}
	s.observe(start, "")
	s.signalRetention()
	return SaveResult{Version: v}, nil
}

func (s *FileStore) observe(start time.Time, code shared.Code) {
	if s.opts.OnWrite != nil {
		s.opts.OnWrite(time.Since(start), code)
	}
}

// replay answers a request whose idempotency key is known. ok is false when
// the key is new (or empty) and the snapshot must be written.
func (s *FileStore) replay(account string, req SaveRequest) (SaveResult, bool, error) {
	if req.IdempotencyKey == "" {
		return SaveResult{}, false, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ref, ok := s.idem[req.IdempotencyKey]
	if !ok {
		return SaveResult{}, false, nil
	}
	if ref.e.hash != req.BodyHash || ref.account != account {
		e := shared.Errorf(shared.CodeIdempotencyKeyReused,
			"idempotency key %q was already used for a different snapshot (version %s)", req.IdempotencyKey, ref.e.id)
		e.Field = "Idempotency-Key"
		return SaveResult{}, true, e
	}
	ix := s.accounts[ref.account]
	i := -1
	if ix != nil {
		i = ix.position(ref.e)
	}
	if i < 0 {
		// Cannot happen: retention removes the key with the version.
		return SaveResult{}, false, nil
	}
	return SaveResult{Version: ix.version(i), Replayed: true}, true, nil
}

// write stores one snapshot durably and adds it to the index. The caller
// holds writeSem.
func (s *FileStore) write(ctx context.Context, snap shared.Snapshot, req SaveRequest) (Version, error) {
	if err := s.checkWritable(ctx); err != nil {
		return Version{}, err
	}
	s.mu.Lock()
	seq := s.nextSeq
	s.nextSeq++
	s.mu.Unlock()
	r := record{
		Schema: recordSchema, ID: xid.New().String(), StoredAt: s.now().UTC(), Seq: seq,
		IdempotencyKey: req.IdempotencyKey, BodyHash: req.BodyHash, Snapshot: snap,
	}
	data, err := json.Marshal(r)
	if err != nil {
		return Version{}, &shared.Error{Code: shared.CodeStorageWriteFailed,
			Message: "storage: encoding the snapshot failed", Err: err}
	}
	data = append(data, '\n')
	adir := filepath.Join(s.dir, snap.Account)
	vdir := filepath.Join(adir, versionsDir)
	final := filepath.Join(vdir, fileName(snap.ScrapedAt, r.ID))
	err = s.retry(ctx, "save", func() error {
		if err := s.ensureDirs(adir, vdir); err != nil {
			return err
		}
		return s.writeFile(vdir, final, data)
	})
	if err != nil {
		return Version{}, s.writeError("writing", vdir, err)
	}

	e := &entry{id: r.ID, seq: seq, storedAt: r.StoredAt, key: req.IdempotencyKey, hash: req.BodyHash}
	s.mu.Lock()
	defer s.mu.Unlock()
	snapCopy := cloneSnapshot(snap)
	s.intern.snapshot(&snapCopy)
	e.snap = snapCopy
	ix := s.accounts[snap.Account]
	if ix == nil {
		ix = &accountIndex{}
		s.accounts[snap.Account] = ix
	}
	i := ix.insert(e)
	s.cpDirty[snap.Account]++
	if e.key != "" {
		s.idem[e.key] = &idemRef{account: snap.Account, e: e}
	}
	return ix.version(i), nil
}

// ensureDirs creates an account's directories (again, should someone have
// removed them) and, the first time in this process, syncs their parents so
// that a new account survives a crash.
func (s *FileStore) ensureDirs(adir, vdir string) error {
	if err := s.fs.MkdirAll(vdir, 0o750); err != nil {
		return err
	}
	s.mu.RLock()
	made := s.madeDirs[vdir]
	s.mu.RUnlock()
	if made {
		return nil
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return err
	}
	if err := s.fs.SyncDir(adir); err != nil {
		return err
	}
	s.mu.Lock()
	s.madeDirs[vdir] = true
	s.mu.Unlock()
	return nil
}

// writeFile is one attempt of tmp → write → fsync → rename → fsync dir. On
// any error nothing is left behind: the tmp file is removed, and a renamed
// file whose directory could not be synced is removed too, so that a failed
// save never reappears as a version after a restart.
func (s *FileStore) writeFile(vdir, final string, data []byte) (err error) {
	f, err := s.fs.CreateTemp(vdir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	closed, renamed := false, false
	defer func() {
		if err == nil {
			return
		}
		if !closed {
			_ = f.Close()
		}
		victim := tmp
		if renamed {
			victim = final
		}
		if rerr := s.fs.Remove(victim); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			s.log.Error("could not remove the file of a failed write", "path", victim, "error", rerr.Error())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	closed = true
	if err = f.Close(); err != nil {
		return err
	}
	if err = s.fs.Rename(tmp, final); err != nil {
		return err
	}
	renamed = true
	return s.fs.SyncDir(vdir)
}
