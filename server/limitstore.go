package server

import (
	"sync"
	"time"
)

// limitStore is the fiber.Storage behind the rate limiter. fiber's default
// in-memory storage starts a garbage-collection goroutine that nothing can
// stop; this one expires entries lazily, so a Server leaves no goroutine
// behind when it closes.
type limitStore struct {
	now func() time.Time

	mu        sync.Mutex
	m         map[string]limitEntry
	nextSweep int
}

type limitEntry struct {
	val []byte
	exp time.Time // zero: never expires
}

const limitSweepAt = 10000

func newLimitStore() *limitStore {
	return &limitStore{now: time.Now, m: map[string]limitEntry{}, nextSweep: limitSweepAt}
}

func (s *limitStore) Get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok {
		return nil, nil
	}
	if !e.exp.IsZero() && !s.now().Before(e.exp) {
		delete(s.m, key)
		return nil, nil
	}
	return e.val, nil
}

func (s *limitStore) Set(key string, val []byte, exp time.Duration) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	// Sweeping at doubling sizes keeps Set amortised O(1) and the map
	// bounded by the number of clients active within one window.
	if len(s.m) >= s.nextSweep {
		for k, e := range s.m {
			if !e.exp.IsZero() && !now.Before(e.exp) {
				delete(s.m, k)
			}
		}
		s.nextSweep = max(limitSweepAt, 2*len(s.m))
	}
	e := limitEntry{val: append([]byte(nil), val...)}
	if exp > 0 {
		e.exp = now.Add(exp)
	}
	s.m[key] = e
	return nil
}

func (s *limitStore) Delete(key string) error {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
	return nil
}

func (s *limitStore) Reset() error {
	s.mu.Lock()
	s.m = map[string]limitEntry{}
	s.mu.Unlock()
	return nil
}

func (s *limitStore) Close() error { return nil }

// size is the number of buckets held, for tests of the bound.
func (s *limitStore) size() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
