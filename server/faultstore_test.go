package server

import (
	"context"
	"sync"
	"time"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// faultStore wraps the real store and overrides single calls. It is used
// only for conditions a test cannot cause on the real disk at will: a
// storage check that hangs, a breaker opened by earlier failures, and the
// store's error codes as they reach the HTTP layer (the store's own tests
// produce each code from real errno values on an injected filesystem).
type faultStore struct {
	store.Store

	mu        sync.Mutex
	saveErr   error
	readErr   error
	checkErr  error
	breaker   *shared.State
	saveBlock chan struct{} // Save waits on it (ignoring ctx) when set

	// checkBlock makes CheckWritable hang until it is closed; with
	// ignoreCtx it does not honour ctx either (a stuck syscall).
	checkBlock   chan struct{}
	ignoreCtx    bool
	checkEntered chan struct{}
	saveEntered  chan struct{}
}

func (f *faultStore) set(fn func(*faultStore)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *faultStore) Save(ctx context.Context, req store.SaveRequest) (store.SaveResult, error) {
	f.mu.Lock()
	err, block, entered := f.saveErr, f.saveBlock, f.saveEntered
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if block != nil {
		<-block
	}
	if err != nil {
		return store.SaveResult{}, err
	}
	return f.Store.Save(ctx, req)
}

func (f *faultStore) Latest(ctx context.Context, account string) (store.Version, error) {
	f.mu.Lock()
	err := f.readErr
	f.mu.Unlock()
	if err != nil {
		return store.Version{}, err
	}
	return f.Store.Latest(ctx, account)
}

func (f *faultStore) CheckWritable(ctx context.Context) error {
	f.mu.Lock()
	err, block, ignore, entered := f.checkErr, f.checkBlock, f.ignoreCtx, f.checkEntered
	f.mu.Unlock()
	if block != nil {
		if entered != nil {
			select {
			case entered <- struct{}{}:
			default:
			}
		}
		if ignore {
			<-block
		} else {
			select {
			case <-block:
			case <-ctx.Done():
				return &shared.Error{Code: shared.CodeStorageWriteFailed, Message: "storage check timed out", Err: ctx.Err()}
			}
		}
	}
	if err != nil {
		return err
	}
	return f.Store.CheckWritable(ctx)
}

func (f *faultStore) Status() store.Status {
	st := f.Store.Status()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.breaker != nil {
		st.Breaker = *f.breaker
	}
	if f.checkErr != nil {
		st.Writable, st.WriteErr = false, f.checkErr
	}
	return st
}

// monoClock is the wall clock the health cache uses to see a storage check
// running past its timeout; tests move it instead of waiting.
type monoClock struct {
	mu  sync.Mutex
	now time.Time
}

func (m *monoClock) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

func (m *monoClock) Advance(d time.Duration) {
	m.mu.Lock()
	m.now = m.now.Add(d)
	m.mu.Unlock()
}
