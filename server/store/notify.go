package store

import "sync"

// notifier calls the functions given to Subscribe after each stored
// snapshot. Another backend feeds its subscribers from wherever it learns
// of saves (a database's LISTEN/NOTIFY, say), so the server does not care
// which replica wrote.
type notifier struct {
	mu   sync.RWMutex
	next uint64
	subs map[uint64]func(account string)
}

// Subscribe implements Store.
func (s *FileStore) Subscribe(fn func(account string)) (cancel func()) {
	n := &s.notify
	n.mu.Lock()
	if n.subs == nil {
		n.subs = make(map[uint64]func(string))
	}
	id := n.next
	n.next++
	n.subs[id] = fn
	n.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			n.mu.Lock()
			delete(n.subs, id)
			n.mu.Unlock()
		})
	}
}

// saved tells the subscribers that account has a new version. It runs on
// the saving goroutine after every lock is released.
func (n *notifier) saved(account string) {
	n.mu.RLock()
	fns := make([]func(string), 0, len(n.subs))
	for _, fn := range n.subs {
		fns = append(fns, fn)
	}
	n.mu.RUnlock()
	for _, fn := range fns {
		fn(account)
	}
}
