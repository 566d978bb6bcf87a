package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"unicode/utf8"

	"github.com/claude-usage/widget/internal/atomicfile"
	"github.com/claude-usage/widget/shared"
)

// ScraperStatusFile keeps an account's latest scraper report across
// restarts: <dir>/<account>/scraper-status.json.
const ScraperStatusFile = "scraper-status.json"

// legacyStatusTmp starts the tmp files of the scraper-status writer of
// earlier versions, swept at Open like the current ones.
const legacyStatusTmp = "." + ScraperStatusFile + ".tmp-"

// maxStatusMessage bounds a report's message (runes).
const maxStatusMessage = 500

// loadScraperStatus reads an account's scraper report. A file that does not
// parse is logged and left alone: it is a convenience, not data, and the
// next report replaces it.
func (s *FileStore) loadScraperStatus(account string) {
	path := filepath.Join(s.dir, account, ScraperStatusFile)
	raw, err := s.fs.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var st shared.ScraperStatus
	if err == nil {
		err = json.Unmarshal(raw, &st)
	}
	if err == nil && st.Account != account {
		err = fmt.Errorf("account %q does not match the directory", st.Account)
	}
	if err == nil {
		err = checkScraperStatus(st)
	}
	if err != nil {
		s.log.Warn("ignoring an unreadable scraper status", "path", path, "error", err.Error())
		return
	}
	st.At = st.At.UTC()
	s.scrapers[account] = st
}

// checkScraperStatus refuses what the store could not keep or load again.
func checkScraperStatus(st shared.ScraperStatus) error {
	switch {
	case !shared.AccountPattern.MatchString(st.Account):
		return errValidation("account", "account must match %s", shared.AccountPattern)
	case st.At.IsZero():
		return errValidation("at", "at is required")
	case !timeInRange(st.At):
		return errValidation("at", "at must be a time in the years 2000–9999 (UTC), got %s", st.At.UTC().Format("2006-01-02T15:04:05Z07:00"))
	case !utf8.ValidString(st.Message) || utf8.RuneCountInString(st.Message) > maxStatusMessage:
		return errValidation("message", "message must be valid UTF-8 of at most %d characters", maxStatusMessage)
	}
	return nil
}

// SaveScraperStatus implements Store: the report is checked and encoded,
// then written (tmp → fsync → rename → fsync dir, transient errors
// retried), and only then becomes the account's latest in memory.
func (s *FileStore) SaveScraperStatus(ctx context.Context, st shared.ScraperStatus) (bool, error) {
	if st.Account == "" {
		st.Account = shared.DefaultAccount
	}
	st.At = st.At.UTC()
	if err := checkScraperStatus(st); err != nil {
		return false, err
	}
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return false, errValidation("body", "the scraper status cannot be stored: %s", err.Error())
	}
	if err := s.life.Enter(); err != nil {
		return false, err
	}
	defer s.life.Leave()
	select {
	case s.statusSem <- struct{}{}:
	case <-ctx.Done():
		return false, &shared.Error{Code: shared.CodeStorageUnavailable,
			Message: "storage: gave up waiting for an earlier scraper status write to finish", Err: ctx.Err()}
	}
	defer func() { <-s.statusSem }()

	s.mu.RLock()
	old, ok := s.scrapers[st.Account]
	s.mu.RUnlock()
	if ok && st.At.Before(old.At) {
		return false, nil // a late report never hides a newer one
	}
	adir := filepath.Join(s.dir, st.Account)
	err = s.retry(ctx, "scraper status", func() error {
		if err := s.fs.MkdirAll(adir, 0o750); err != nil {
			return err
		}
		_, err := atomicfile.WriteFS(s.fs, filepath.Join(adir, ScraperStatusFile), raw, 0o600)
		return err
	})
	if err != nil {
		return false, s.writeError("writing the scraper status in", adir, err)
	}
	s.mu.Lock()
	s.scrapers[st.Account] = st
	s.mu.Unlock()
	return true, nil
}

// ScraperStatus implements Store.
func (s *FileStore) ScraperStatus(account string) (shared.ScraperStatus, bool) {
	if account == "" {
		account = shared.DefaultAccount
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.scrapers[account]
	return st, ok
}
