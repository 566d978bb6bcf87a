package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/claude-usage/widget/shared"
)

// ScraperStatusFile is the per-account file that keeps the latest scraper
// status across restarts: <data-dir>/<account>/scraper-status.json.
const ScraperStatusFile = "scraper-status.json"

var categoryPattern = regexp.MustCompile(`^[A-Z][A-Z_]{0,31}$`)

// statusBook keeps the latest scraper status per account in memory and on
// disk.
type statusBook struct {
	dir string
	log *slog.Logger

	mu sync.Mutex
	m  map[string]shared.ScraperStatus
	// wmu serialises file writes so an older status never overwrites a
	// newer one on disk.
	wmu sync.Mutex
}

// loadStatusBook reads every <dir>/<account>/scraper-status.json. A file
// that does not parse is logged and ignored: it is a convenience, not data.
func loadStatusBook(dir string, log *slog.Logger) (*statusBook, error) {
	b := &statusBook{dir: dir, log: log, m: map[string]shared.ScraperStatus{}}
	if dir == "" {
		return b, nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("server: reading scraper statuses in %s: %w", dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() || !shared.AccountPattern.MatchString(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name(), ScraperStatusFile)
		raw, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		var st shared.ScraperStatus
		if err == nil {
			err = json.Unmarshal(raw, &st)
		}
		if err != nil || st.Account != e.Name() {
			log.Warn("ignoring unreadable scraper status", "file", p, "error", fmt.Sprint(err))
			continue
		}
		b.m[st.Account] = st
	}
	return b, nil
}

func (b *statusBook) get(account string) *shared.ScraperStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	if st, ok := b.m[account]; ok {
		return &st
	}
	return nil
}

// all returns the statuses sorted by account.
func (b *statusBook) all() []shared.ScraperStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]shared.ScraperStatus, 0, len(b.m))
	for _, st := range b.m {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Account < out[j].Account })
	return out
}

// put keeps st when it is not older than the one held and persists it. It
// reports whether st was newer.
func (b *statusBook) put(st shared.ScraperStatus) (bool, error) {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.mu.Lock()
	if old, ok := b.m[st.Account]; ok && st.At.Before(old.At) {
		b.mu.Unlock()
		return false, nil // a late report never hides a newer one
	}
	b.m[st.Account] = st
	b.mu.Unlock()
	if b.dir == "" {
		return true, nil
	}
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return true, fmt.Errorf("server: encoding scraper status: %w", err)
	}
	return true, writeFileAtomic(filepath.Join(b.dir, st.Account), ScraperStatusFile, raw)
}

// writeFileAtomic writes tmp → fsync → rename → fsync dir so that a crash
// leaves either the old or the new file.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	fail := func(op string, err error) error { return storageError(dir, op, err) }
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fail("creating the directory", err)
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fail("creating a temp file", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fail("writing", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fail("syncing", err)
	}
	if err := f.Close(); err != nil {
		return fail("closing", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fail("renaming", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fail("opening the directory", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fail("syncing the directory", err)
	}
	return nil
}

// storageError maps an OS error to the storage codes, with the directory's
// free bytes and mode for the operator.
func storageError(dir, op string, err error) error {
	code := shared.CodeStorageWriteFailed
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		code = shared.CodeStorageDiskFull
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EROFS):
		code = shared.CodeStoragePermissionDenied
	}
	return &shared.Error{Code: code, Err: err,
		Message: fmt.Sprintf("saving the scraper status failed while %s in %s (%s): %v", op, dir, dirFacts(dir), errnoOf(err))}
}

// errnoOf strips the path from an *os.PathError: the message names the
// directory already.
func errnoOf(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

func dirFacts(dir string) string {
	// Report on the nearest existing ancestor when dir itself is missing.
	orig := dir
	for i := 0; i < 64; i++ {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	var parts []string
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(dir, &sfs); err == nil {
		parts = append(parts, fmt.Sprintf("free %d bytes", uint64(sfs.Bavail)*uint64(sfs.Bsize)))
	}
	if fi, err := os.Stat(dir); err == nil {
		s := fmt.Sprintf("mode %s", fi.Mode().Perm())
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			s += fmt.Sprintf(", owner %d:%d", st.Uid, st.Gid)
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return "directory not accessible"
	}
	if dir != orig {
		parts = append([]string{"nearest existing " + dir}, parts...)
	}
	return strings.Join(parts, ", ")
}

// decodeScraperStatus parses the body strictly and validates it at now.
func (s *Server) decodeScraperStatus(body []byte) (shared.ScraperStatus, error) {
	var st shared.ScraperStatus
	vfail := func(field, format string, args ...any) error {
		return &shared.ValidationError{Problems: []shared.FieldError{{Field: field, Reason: fmt.Sprintf(format, args...)}}}
	}
	if !utf8.Valid(body) {
		return st, vfail("body", "must be valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return st, vfail(te.Field, "has the wrong type: %s", te.Value)
		}
		if _, rest, ok := strings.Cut(err.Error(), `unknown field "`); ok {
			if name, _, ok := strings.Cut(rest, `"`); ok && name != "" {
				return st, vfail(truncateRunes(name, 60), "is not a known field")
			}
		}
		return st, vfail("body", "is not a valid scraper status: %s", truncateRunes(err.Error(), 200))
	}
	if dec.More() {
		return st, vfail("body", "must contain exactly one JSON object")
	}
	if st.Account == "" {
		st.Account = shared.DefaultAccount
	}
	st.At = st.At.UTC()
	now := s.cfg.Now()
	switch {
	case !shared.AccountPattern.MatchString(st.Account):
		return st, vfail("account", "must match %s, got %q", shared.AccountPattern, truncateRunes(st.Account, 80))
	case st.At.IsZero():
		return st, vfail("at", "is required")
	case st.At.After(now.Add(shared.MaxFutureSkew)):
		return st, vfail("at", "must not be more than 5 min in the future, got %s", st.At.Format("2006-01-02T15:04:05Z07:00"))
	case st.Category != "" && !categoryPattern.MatchString(string(st.Category)):
		return st, vfail("category", "must be an upper-case code such as NOT_LOGGED_IN, got %q", truncateRunes(string(st.Category), 40))
	case !st.OK && st.Category == "":
		return st, vfail("category", "is required when ok is false")
	case utf8.RuneCountInString(st.Message) > 500:
		return st, vfail("message", "must be at most 500 characters")
	}
	return st, nil
}

func (s *Server) postScraperStatus(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	st, err := s.decodeScraperStatus(c.Body())
	if err != nil {
		return err
	}
	newer, err := s.status.put(st)
	if err != nil {
		return err
	}
	if newer {
		s.log.Info("scraper status", "requestId", requestID(c), "account", st.Account,
			"ok", st.OK, "category", st.Category, "at", st.At)
	}
	return c.SendStatus(fiber.StatusNoContent)
}
