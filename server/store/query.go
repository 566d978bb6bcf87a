package store

import (
	"context"
	"sort"
	"time"

	"github.com/claude-usage/widget/shared"
)

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

// index returns the account's non-empty index; the caller holds s.mu.
func (s *FileStore) index(account string) (*accountIndex, error) {
	account, err := normAccount(account)
	if err != nil {
		return nil, err
	}
	ix := s.accounts[account]
	if ix == nil || len(ix.entries) == 0 {
		return nil, noData(account)
	}
	return ix, nil
}

// Latest implements Store.
func (s *FileStore) Latest(_ context.Context, account string) (Version, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix, err := s.index(account)
	if err != nil {
		return Version{}, err
	}
	return ix.version(len(ix.entries) - 1), nil
}

// ByNumber implements Store.
func (s *FileStore) ByNumber(_ context.Context, account string, n int) (Version, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix, err := s.index(account)
	if err != nil {
		return Version{}, err
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
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix, err := s.index(account)
	if err != nil {
		return Version{}, err
	}
	return ix.version(ix.nearest(t)), nil
}

// History implements Store. limit <= 0 means no limit.
func (s *FileStore) History(_ context.Context, account string, since time.Time, limit int) ([]Version, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix, err := s.index(account)
	if err != nil {
		return nil, err
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

// Status implements Store. It reads only memory: the last write check's
// result, the breaker and the index.
func (s *FileStore) Status() Status {
	st := s.check.Status(func(st *Status) { st.FreeBytes, st.CorruptFiles = s.freeBytes, s.corrupt })

	s.mu.RLock()
	defer s.mu.RUnlock()
	for a, ix := range s.accounts {
		if n := len(ix.entries); n > 0 {
			st.Accounts = append(st.Accounts, AccountStatus{Account: a, Count: n, Latest: ix.entries[n-1].scrapedAt()})
		}
	}
	sort.Slice(st.Accounts, func(i, j int) bool { return st.Accounts[i].Account < st.Accounts[j].Account })
	for _, sc := range s.scrapers {
		st.Scrapers = append(st.Scrapers, sc)
	}
	sort.Slice(st.Scrapers, func(i, j int) bool { return st.Scrapers[i].Account < st.Scrapers[j].Account })
	return st
}
