package server

import (
	"context"
	"sync"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// faultStore wraps the real store and overrides single calls. It is used
// only for conditions a test cannot cause on the real store at will: a save
// that hangs, a breaker in a given state, a write check with a given error,
// and the store's error codes as they reach the HTTP layer (the store's own
// tests produce each code from real errno values on an injected
// filesystem, and storagefs_test.go runs the real store on one here).
type faultStore struct {
	store.Store

	mu          sync.Mutex
	saveErr     error
	readErr     error
	checkErr    error
	breaker     *shared.State
	saveBlock   chan struct{} // Save waits on it (ignoring ctx) when set
	saveEntered chan struct{}
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
	err := f.checkErr
	f.mu.Unlock()
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
