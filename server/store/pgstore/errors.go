package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sethvargo/go-retry"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// errKind is how the store reacts to a database error.
type errKind int

const (
	kindOther       errKind = iota
	kindTransient           // 40001 serialization, 40P01 deadlock: retried
	kindUnavailable         // refused, reset, timed out, shutting down: 503
	kindNoSpace             // 53100 disk full on the database server: 507
	kindPerm                // 42501 insufficient privilege, 25006 read-only
	kindData                // class 22: a value the database cannot keep
)

// classify sorts err by SQLSTATE, or by what kind of network failure it
// is when the server never answered.
func classify(err error) errKind {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "40001", pe.Code == "40P01":
			return kindTransient
		case pe.Code == "53100":
			return kindNoSpace
		case pe.Code == "42501", pe.Code == "25006":
			return kindPerm
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "57P"),
			pe.Code == "53300", pe.Code == "53000":
			return kindUnavailable
		case strings.HasPrefix(pe.Code, "22"):
			return kindData
		}
		return kindOther
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), pgconn.Timeout(err),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return kindUnavailable
	}
	// pgx reports a connection that died under a query as "conn closed"
	// or "unexpected EOF" wrapped in its own types.
	if msg := err.Error(); strings.Contains(msg, "conn closed") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "closed pool") {
		return kindUnavailable
	}
	return kindOther
}

// storageError turns a database error met while doing verb into the shared
// error with the code the contract gives it. The message names the database
// (without a password) and the SQLSTATE, what an operator looks up first.
func (s *Store) storageError(verb string, write bool, err error) *shared.Error {
	var se *shared.Error
	if errors.As(err, &se) {
		return se
	}
	code := shared.CodeStorageReadFailed
	what := "read failed"
	if write {
		code, what = shared.CodeStorageWriteFailed, "write failed"
	}
	switch classify(err) {
	case kindUnavailable:
		code, what = shared.CodeStorageUnavailable, "database unavailable"
	case kindNoSpace:
		code, what = shared.CodeStorageDiskFull, "database server disk full"
	case kindPerm:
		code, what = shared.CodeStoragePermissionDenied, "permission denied"
	case kindData:
		code, what = shared.CodeValidationFailed, "the database refused a value"
	}
	cause := err.Error()
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		cause = fmt.Sprintf("SQLSTATE %s: %s", pe.Code, pe.Message)
	}
	return &shared.Error{
		Code:    code,
		Message: fmt.Sprintf("storage: %s %s in %s (%s)", what, verb, s.where, cause),
		Err:     err,
	}
}

// countsAgainst reports whether err says the database is failing, as
// opposed to the request being wrong; only those move the breaker.
func countsAgainst(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false // the caller went away; the database did nothing wrong
	}
	var se *shared.Error
	if !errors.As(err, &se) {
		return err != nil
	}
	switch se.Code {
	case shared.CodeStorageUnavailable, shared.CodeStorageDiskFull, shared.CodeStoragePermissionDenied,
		shared.CodeStorageWriteFailed, shared.CodeStorageReadFailed:
		return true
	}
	return false
}

// retry runs op with go-retry: serialization failures and deadlocks are
// retried store.RetryMax times at 100, 200, 400 ms (a new backoff per
// operation), anything else returns at once.
func (s *Store) retry(ctx context.Context, what string, op func(context.Context) error) error {
	b := retry.WithMaxRetries(store.RetryMax, retry.NewExponential(store.RetryBase))
	attempt := 0
	var last error
	err := retry.Do(ctx, b, func(ctx context.Context) error {
		attempt++
		err := op(ctx)
		if err == nil || classify(err) != kindTransient {
			return err
		}
		last = err
		s.log.Warn("transient database error", "op", what, "attempt", attempt, "error", err.Error())
		return retry.RetryableError(err)
	})
	if err != nil && last != nil && ctx.Err() != nil && !errors.Is(err, last) {
		return errors.Join(last, err)
	}
	return err
}

// do runs one database operation through the breaker: while it is open the
// database is not asked and the answer is STORAGE_UNAVAILABLE at once;
// transient errors are retried; the error is mapped to its shared code.
func (s *Store) do(ctx context.Context, verb string, write bool, op func(context.Context) error) error {
	done, err := s.breaker.Allow()
	if err != nil {
		s.check.Lock()
		last := s.lastErr
		s.check.Unlock()
		msg := fmt.Sprintf("storage: not asking the database after %d consecutive failures; next attempt in %s",
			s.breaker.Failures(), s.breaker.RetryIn().Round(1e9))
		if last != nil {
			msg += "; last error: " + last.Error()
		}
		return &shared.Error{Code: shared.CodeStorageUnavailable, Message: msg, Err: last}
	}
	err = s.retry(ctx, verb, op)
	if err != nil {
		err = s.storageError(verb, write, err)
	}
	failed := countsAgainst(err)
	done(!failed)
	if failed {
		s.check.Lock()
		s.lastErr = err
		s.check.Unlock()
	}
	return err
}
