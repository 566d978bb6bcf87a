package pgstore

import "sync"

// subscribers are the functions given to Subscribe: called with the
// account after every snapshot stored, by this instance (on the saving
// goroutine) or by another replica (on the listener goroutine, once this
// instance's figures include it).
type subscribers struct {
	mu   sync.RWMutex
	next uint64
	fns  map[uint64]func(account string)
}

// Subscribe calls fn with the account after every snapshot stored (not
// after an idempotent replay) by this instance or any other replica of the
// database, until cancel is called. fn must not block. After the listener
// reconnected, fn is called once for each account whose versions changed
// meanwhile.
func (s *Store) Subscribe(fn func(account string)) (cancel func()) {
	n := &s.subs
	n.mu.Lock()
	if n.fns == nil {
		n.fns = make(map[uint64]func(string))
	}
	id := n.next
	n.next++
	n.fns[id] = fn
	n.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			n.mu.Lock()
			delete(n.fns, id)
			n.mu.Unlock()
		})
	}
}

// saved tells the subscribers (and Options.OnSaved, for another replica's
// saves) that account has a new version.
func (s *Store) saved(account, id string, remote bool) {
	s.subs.mu.RLock()
	fns := make([]func(string), 0, len(s.subs.fns))
	for _, fn := range s.subs.fns {
		fns = append(fns, fn)
	}
	s.subs.mu.RUnlock()
	for _, fn := range fns {
		fn(account)
	}
	if remote && s.opts.OnSaved != nil {
		s.opts.OnSaved(account, id)
	}
}
