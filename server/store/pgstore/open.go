// Package pgstore is the PostgreSQL backend of store.Store, for several
// server replicas sharing one database: versions, idempotency keys and
// scraper reports live in the database, each replica keeps only the
// figures Status and Accounts answer from memory, and a snapshot stored by
// one replica is announced to the others with NOTIFY.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/xid"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// Options configures Open. Zero values take the defaults.
type Options struct {
	// DSN is the connection string, postgres://user:pass@host:port/db?…
	DSN               string
	RetentionVersions int // keep at least the newest N versions per account (100)
	RetentionDays     int // and everything scraped in the last D days (7)
	HistoryDays       int // the rollup keeps hours and windows this long (400)
	Logger            *slog.Logger
	// OnSaved is called for every snapshot another store instance (another
	// replica) stored, once this instance's figures include it; id is the
	// version's id, or "" when the listener reconnected and account's
	// latest changed meanwhile. It runs on the listener goroutine: it must
	// not block. Snapshots this instance stores are not reported.
	OnSaved func(account, id string)
	// MaxConns bounds the pool (default: the DSN's pool_max_conns, else
	// defaultMaxConns).
	MaxConns int32
	// Tests only: recoverEvery replaces store.RecoveryEvery, retainGap
	// RetainGap, refreshEvery RefreshEvery, rollupDelay
	// rollupPersistDelay; onRetention is called after each background
	// retention run.
	recoverEvery time.Duration
	retainGap    time.Duration
	refreshEvery time.Duration
	rollupDelay  time.Duration
	onRetention  func()
}

// Store is the PostgreSQL store.Store.
type Store struct {
	pool     *pgxpool.Pool
	log      *slog.Logger
	opts     Options
	where    string // the DSN without its password, for messages
	instance string // this instance's id: its probe row and NOTIFY origin

	// life is the store's lifecycle, and ctx its Context, which the loops
	// stop with. breaker is check's.
	life    *store.Lifecycle
	ctx     context.Context
	check   *store.WriteCheck
	breaker *shared.Breaker

	// reloadMu orders the figure reloads: each reads the database and
	// applies what it read while holding it, so a reload that read
	// earlier (before another replica's commit) never overwrites one that
	// read later, and the figures only move forward.
	reloadMu sync.Mutex
	mu       sync.RWMutex // guards the figures below
	accounts map[string]accountFigures
	scrapers map[string]shared.ScraperStatus
	corrupt  int
	gen      uint64 // bumped by each change this instance makes to the figures
	// rollups, rollDirty and rollBehind are rollup.go's, rollHeld
	// rollhold.go's.
	rollups    map[string]*store.Rollup
	rollDirty  map[string]bool
	rollBehind map[string]int64
	rollHeld   map[string][]rollHeld
	// latest and latestGen are latest.go's cache.
	latest    map[string]store.Version
	latestGen map[string]uint64

	// Guarded by check.Lock: db is recorded with each write check.
	lastErr error
	db      store.DatabaseStatus

	kick     chan struct{}
	rollKick chan struct{}
	subs     subscribers

	reserveMu sync.Mutex // accountlimit.go's
}

type accountFigures struct {
	count    int
	latest   time.Time
	latestID string
	gen      uint64 // s.gen when this instance last changed it
}

var _ store.Store = (*Store)(nil)

// Redact is dsn without its password, for logs and messages.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "postgres (connection string not shown)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Open connects, applies the schema migrations (under an advisory lock),
// quarantines corrupt rows, loads the figures, runs the write check and
// starts retention, the listener and the recovery check. A failing write
// check does not fail Open; an unreachable database does.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.DSN == "" {
		return nil, errors.New("storage: Options.DSN is required")
	}
	if opts.RetentionVersions <= 0 {
		opts.RetentionVersions = store.DefaultRetentionVersions
	}
	if opts.RetentionDays <= 0 {
		opts.RetentionDays = store.DefaultRetentionDays
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.HistoryDays <= 0 {
		opts.HistoryDays = store.DefaultHistoryDays
	}
	if opts.recoverEvery <= 0 {
		opts.recoverEvery = store.RecoveryEvery
	}
	if opts.retainGap <= 0 {
		opts.retainGap = RetainGap
	}
	if opts.refreshEvery <= 0 {
		opts.refreshEvery = RefreshEvery
	}
	if opts.rollupDelay <= 0 {
		opts.rollupDelay = rollupPersistDelay
	}
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		// pgx's message may quote the string, password included.
		return nil, fmt.Errorf("storage: the PostgreSQL connection string %s does not parse", Redact(opts.DSN))
	}
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(opts.DSN, "pool_max_conns"):
		cfg.MaxConns = defaultMaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > connectTimeout {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	s := &Store{
		log:       opts.Logger.With("component", "store"),
		opts:      opts,
		where:     Redact(opts.DSN),
		instance:  xid.New().String(),
		accounts:  make(map[string]accountFigures),
		scrapers:  make(map[string]shared.ScraperStatus),
		rollups:   make(map[string]*store.Rollup),
		rollDirty: make(map[string]bool),
		rollKick:  make(chan struct{}, 1),
		latest:    make(map[string]store.Version),
		latestGen: make(map[string]uint64),
		kick:      make(chan struct{}, 1),
		life:      store.NewLifecycle(),
	}
	s.ctx = s.life.Context()
	s.check = store.NewWriteCheck(s.life, store.WriteCheckConfig{
		Probe: s.probe, Where: s.where, LogKey: "database", Subject: "database",
		Unanswered: shared.CodeStorageUnavailable, RecoverEvery: opts.recoverEvery, Log: s.log,
	})
	s.breaker = s.check.Breaker()
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, s.storageError("connecting", false, err)
	}
	ver, err := Migrate(ctx, s.pool, 0, s.log)
	if err != nil {
		s.pool.Close()
		return nil, s.storageError("migrating the schema", true, err)
	}
	s.db.SchemaVersion, s.db.SchemaWanted = ver, SchemaVersion()
	if err := s.quarantineCorrupt(ctx); err != nil {
		s.pool.Close()
		return nil, s.storageError("checking the stored versions", false, err)
	}
	if err := s.loadRollups(ctx); err != nil {
		s.pool.Close()
		return nil, s.storageError("loading the rollups", false, err)
	}
	if err := s.refreshAll(ctx); err != nil {
		s.pool.Close()
		return nil, s.storageError("loading the accounts", false, err)
	}
	if err := s.CheckWritable(ctx); err != nil {
		s.log.Warn("storage is not writable; reads still work", "database", s.where, "error", err.Error())
	}
	s.life.Go(s.rollupLoop)
	s.life.Go(s.retentionLoop)
	s.check.StartRecovery()
	s.life.Go(s.listenLoop)
	s.life.Go(s.refreshLoop)
	s.signalRetention()
	if len(s.rollDirty) > 0 {
		s.rollKick <- struct{}{}
	}
	s.log.Info("opened the PostgreSQL store", "database", s.where, "schemaVersion", ver,
		"accounts", len(s.accounts))
	return s, nil
}

// defaultMaxConns is enough for a replica's requests, retention and probe
// at once; the listener has a connection of its own.
const defaultMaxConns = 10

// connectTimeout bounds a connection attempt, so that a database that does
// not answer fails a request (and counts for the breaker) within it.
const connectTimeout = 3 * time.Second

// Where is the database the store uses, without a password.
func (s *Store) Where() string { return s.where }

// Pool is the connection pool, for the migrate command's verification.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close implements store.Store: it refuses new writes, waits for those in
// flight, stops the background work, removes its probe row and closes the
// pool.
func (s *Store) Close() error {
	if !s.life.Close() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, _ = s.pool.Exec(ctx, "DELETE FROM usage_probe WHERE instance = $1", s.instance)
	cancel()
	s.pool.Close()
	return nil
}
