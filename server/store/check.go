package store

import (
	"errors"

	"github.com/claude-usage/widget/shared"
)

// CheckSave is the check every backend makes before storing a snapshot:
// it returns the snapshot as it is stored (account defaulted, times in UTC)
// or a VALIDATION_FAILED naming the field. A backend must refuse what the
// file store refuses, so that the two stay interchangeable.
func CheckSave(req SaveRequest) (shared.Snapshot, error) {
	snap := req.Snapshot
	if snap.Account == "" {
		snap.Account = shared.DefaultAccount
	}
	if !shared.AccountPattern.MatchString(snap.Account) {
		return snap, errValidation("account", "account must match %s", shared.AccountPattern)
	}
	snap.ScrapedAt = snap.ScrapedAt.UTC()
	if err := checkTimes(snap); err != nil {
		return snap, err
	}
	// Every version stored must load again, where the same check runs: a
	// snapshot that slipped past the caller's validation would otherwise
	// be stored now and quarantined at the next start.
	if err := snap.Validate(snap.ScrapedAt); err != nil {
		var ve *shared.ValidationError
		field := ""
		if errors.As(err, &ve) {
			field = ve.Field()
		}
		return snap, errValidation(field, "snapshot: %s", err.Error())
	}
	if len(req.IdempotencyKey) > maxKeyLen || len(req.BodyHash) > maxHashLen {
		return snap, errValidation("Idempotency-Key", "idempotency key must be at most %d characters", maxKeyLen)
	}
	return snap, nil
}

// CheckScraperStatus is SaveScraperStatus's check for every backend: the
// report as stored (account defaulted, time in UTC) or a VALIDATION_FAILED.
func CheckScraperStatus(st shared.ScraperStatus) (shared.ScraperStatus, error) {
	if st.Account == "" {
		st.Account = shared.DefaultAccount
	}
	st.At = st.At.UTC()
	return st, checkScraperStatus(st)
}

// NormAccount is the account a read names: "" is the default account, and
// a name that is no account is an INVALID_QUERY.
func NormAccount(account string) (string, error) { return normAccount(account) }

// NoData is the NO_DATA error of an account without versions.
func NoData(account string) error { return noData(account) }

// VersionNotFound is the VERSION_NOT_FOUND error for n among total versions.
func VersionNotFound(n, total int) error {
	e := shared.Errorf(shared.CodeVersionNotFound, "version %d not found; valid: 1..%d or -%d..-1", n, total, total)
	e.Field = "version"
	return e
}

// CloneSnapshot is a deep copy, for backends that hand out snapshots they
// keep.
func CloneSnapshot(s shared.Snapshot) shared.Snapshot { return cloneSnapshot(s) }

// RunRetention runs retention now and returns when it is done; Save starts
// it in the background, tests and the migrate command call it directly.
func (s *FileStore) RunRetention() { s.retain() }
