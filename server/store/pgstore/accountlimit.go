package pgstore

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claude-usage/widget/server/store"
)

// ReserveAccount implements store.Store, exactly across replicas: a new
// account is admitted in a transaction holding an advisory lock, kept
// open until release, that is until the caller's save has committed. A
// replica reserving another new account meanwhile waits for the lock and
// then counts the accounts with that save in. An account this instance
// knows costs nothing; one it does not know (new, or just created by
// another replica) one lock and one count, never held by more than one
// request of this instance at a time (reserveMu), so waiting reservations
// never take more than one connection of the pool.
func (s *Store) ReserveAccount(ctx context.Context, account string, max int) (release func(), err error) {
	if s.Count(account) > 0 {
		return func() {}, nil
	}
	if err := s.life.Enter(); err != nil {
		return nil, err
	}
	s.reserveMu.Lock()
	var tx pgx.Tx
	end := func() {
		if tx != nil {
			// A rollback that fails closes the connection, and the lock
			// goes with the session.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = tx.Rollback(ctx)
			cancel()
		}
		s.reserveMu.Unlock()
		s.life.Leave()
	}
	var known bool
	var n int
	err = s.do(ctx, "reserving an account", true, func(ctx context.Context) error {
		if tx != nil { // a retry after a transient error
			_ = tx.Rollback(ctx)
		}
		var err error
		// Read committed: the count must see what committed while the
		// lock was waited for.
		if tx, err = s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}); err != nil {
			tx = nil
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockAccounts); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM usage_accounts WHERE account = $1 AND versions > 0),
			(SELECT count(*) FROM usage_accounts WHERE versions > 0)`, account).Scan(&known, &n)
	})
	switch {
	case err != nil:
		end()
		return nil, err
	case known:
		end()
		return func() {}, nil
	case n >= max:
		end()
		return nil, store.AccountLimit(max, account)
	}
	return sync.OnceFunc(end), nil
}
