// Package store keeps usage snapshots as versions per account. The Store
// interface lets another backend replace the embedded file store.
package store

import (
	"context"
	"time"

	"github.com/claude-usage/widget/shared"
)

// Version is one stored snapshot with its place in the account's history.
type Version struct {
	ID       string    // xid, never changes
	Number   int       // 1 = oldest, by ScrapedAt (ties by arrival)
	Total    int       // versions of the account when read
	StoredAt time.Time // when the server stored it
	Snapshot shared.Snapshot
}

// SaveRequest is one snapshot to store. IdempotencyKey may be empty; when
// set, BodyHash identifies the request body so that a replay with the same
// key and the same body returns the original result, and the same key with a
// different body fails with shared.CodeIdempotencyKeyReused.
type SaveRequest struct {
	Snapshot       shared.Snapshot
	IdempotencyKey string
	BodyHash       string
}

// SaveResult is what a save returns; Replayed is true when the idempotency
// key was seen before and nothing new was written.
type SaveResult struct {
	Version  Version
	Replayed bool
}

// Status is what health and metrics need to know about the store, read
// from memory: taking it never touches the disk.
type Status struct {
	Dir      string
	Writable bool
	WriteErr error // why not writable, nil when writable
	// CheckedAt is when the last write check finished (zero: none yet);
	// a check running for longer than ProbeStuckAfter makes Writable false.
	CheckedAt time.Time
	// Checking is true while a write check runs.
	Checking     bool
	FreeBytes    uint64 // at the last write check
	CorruptFiles int    // files in <account>/corrupt/ at Open, earlier runs included
	Breaker      shared.State
	// Accounts are the accounts with versions, sorted.
	Accounts []AccountStatus
	// Scrapers are the latest scraper reports, one per account, sorted by
	// account.
	Scrapers []shared.ScraperStatus
	// Database is set by a database backend (nil for the file store).
	Database *DatabaseStatus
}

// AccountStatus is one account's figures in Status.
type AccountStatus struct {
	Account string
	Count   int
	Latest  time.Time // ScrapedAt of the latest version
}

// Store is the storage contract. Every error returned is a *shared.Error
// with a storage or not-found code.
type Store interface {
	// Save stores a snapshot durably (or replays an idempotent one).
	Save(ctx context.Context, req SaveRequest) (SaveResult, error)
	// Latest returns the version with the newest ScrapedAt.
	// shared.CodeNoData when the account has none.
	Latest(ctx context.Context, account string) (Version, error)
	// ByNumber returns version n (1 = oldest; negative counts from the
	// newest, -1 = latest). shared.CodeVersionNotFound names the range.
	ByNumber(ctx context.Context, account string, n int) (Version, error)
	// Nearest returns the version whose ScrapedAt is nearest to t (ties go
	// to the older one).
	Nearest(ctx context.Context, account string, t time.Time) (Version, error)
	// History returns versions with ScrapedAt >= since (zero: all), oldest
	// first, at most limit of the newest ones.
	History(ctx context.Context, account string, since time.Time, limit int) ([]Version, error)
	// Accounts lists accounts that have at least one version, sorted.
	Accounts() []string
	// Count is the number of versions of an account.
	Count(account string) int
	// SaveScraperStatus keeps st as its account's latest scraper report
	// and stores it durably, unless the report held is newer (kept false,
	// nothing written). An invalid st is a VALIDATION_FAILED naming the
	// field; nothing is kept in memory before it is stored.
	SaveScraperStatus(ctx context.Context, st shared.ScraperStatus) (kept bool, err error)
	// ScraperStatus returns the account's latest scraper report.
	ScraperStatus(account string) (shared.ScraperStatus, bool)
	// ReserveAccount admits a write (a snapshot or a scraper report) for
	// account: at once when the account has versions, else only while
	// fewer than max accounts have versions (shared.CodeAccountLimit,
	// AccountLimit's message, otherwise). A new account's reservation
	// holds until release, which the caller calls once its write is done,
	// so that writers for new accounts at once (in this process or, for a
	// shared backend, in any replica) cannot each take the last place.
	ReserveAccount(ctx context.Context, account string, max int) (release func(), err error)
	// CheckWritable is canWriteToStorage: it writes, syncs and removes a
	// probe file. It must honour ctx.
	CheckWritable(ctx context.Context) error
	// Status reports the store's condition for health and metrics; it does
	// not touch the disk (the last CheckWritable result is cached).
	Status() Status
	// Close stops background work (retention, write checks) and waits for
	// it.
	Close() error

	// Series returns the readings of meter with since <= At < until,
	// oldest first: one per kept version that has the meter, and before
	// the oldest kept version the rollup's highest reading of each hour
	// (At = the hour's start), for --history-days. A meter never seen
	// gives an empty slice; since >= until too. shared.CodeNoData when the
	// account has neither versions nor history; a meter id not matching
	// shared.MeterIDPattern is shared.CodeInvalidQuery (Field "meter").
	// Never a directory walk: the file store answers from memory (its
	// index and rollup); a database backend with one query for the kept
	// versions' readings and the rollup's hours from memory.
	Series(ctx context.Context, account, meter string, since, until time.Time) ([]shared.SeriesPoint, error)
	// Windows returns the meter's finished windows, newest (latest
	// ResetsAt) first, at most limit (<= 0: all). A window is finished
	// when a later one of the meter is known or its ResetsAt has passed.
	// Errors as Series. Answered from the rollup in memory, by every
	// backend.
	Windows(ctx context.Context, account, meter string, limit int) ([]shared.Window, error)
	// Subscribe calls fn with the account after every snapshot stored
	// (not after an idempotent replay), by this process or, for a shared
	// backend, by any replica, until cancel is called. fn must not block:
	// it runs on the saving goroutine (or the backend's listener).
	Subscribe(fn func(account string)) (cancel func())
}
