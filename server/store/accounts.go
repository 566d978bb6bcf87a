package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/claude-usage/widget/shared"
)

// AccountLimit is ReserveAccount's refusal: the store has max accounts
// and account would be one more.
func AccountLimit(max int, account string) error {
	return &shared.Error{Code: shared.CodeAccountLimit,
		Message: fmt.Sprintf("this server keeps at most %d accounts and has them all; %q would be one more", max, account)}
}

// ReserveAccount implements Store. The file store is one process's: a
// new account is admitted under a mutex held until release, so that
// concurrent POSTs cannot each take the last place.
func (s *FileStore) ReserveAccount(_ context.Context, account string, max int) (release func(), err error) {
	known := func() (bool, int) {
		accounts := s.Accounts()
		return slices.Contains(accounts, account), len(accounts)
	}
	if ok, _ := known(); ok {
		return func() {}, nil
	}
	s.newAccount.Lock()
	if ok, n := known(); ok || n < max {
		return s.newAccount.Unlock, nil
	}
	s.newAccount.Unlock()
	return nil, AccountLimit(max, account)
}
