package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/claude-usage/widget/shared"
)

// Storage is the small key-value API the widget needs from localStorage.
// Browsers throw from localStorage (private mode, quota, disabled storage):
// implementations turn that into errors and the widget carries on.
type Storage interface {
	Get(key string) (string, bool, error)
	Set(key, value string) error
	Remove(key string) error
	// Keys lists the stored keys, for removing the widget's own.
	Keys() ([]string, error)
}

// MemoryStorage is a Storage in memory, for the host and for tests.
type MemoryStorage struct {
	mu sync.Mutex
	m  map[string]string
	// Fail, when set, makes every call fail with it.
	Fail error
}

// NewMemoryStorage returns an empty MemoryStorage.
func NewMemoryStorage() *MemoryStorage { return &MemoryStorage{m: map[string]string{}} }

func (s *MemoryStorage) Get(key string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Fail != nil {
		return "", false, s.Fail
	}
	v, ok := s.m[key]
	return v, ok, nil
}

func (s *MemoryStorage) Set(key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Fail != nil {
		return s.Fail
	}
	s.m[key] = value
	return nil
}

func (s *MemoryStorage) Keys() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Fail != nil {
		return nil, s.Fail
	}
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	return keys, nil
}

func (s *MemoryStorage) Remove(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Fail != nil {
		return s.Fail
	}
	delete(s.m, key)
	return nil
}

// Storage keys. The version suffix lets a future format ignore old entries.
const (
	keyPrefix  = "usage-widget."
	keyToken   = "usage-widget.token"
	keyAccount = "usage-widget.account"
	keyLastFmt = "usage-widget.last.v1.%s"
)

// Cached is the last good response with the time it arrived.
type Cached struct {
	SavedAt  time.Time             `json:"savedAt"`
	Response *shared.UsageResponse `json:"response"`
}

// Cache keeps the token, the chosen account and the last good response per
// account in a Storage.
type Cache struct {
	st Storage
}

// NewCache wraps st.
func NewCache(st Storage) *Cache { return &Cache{st: st} }

// Token is the stored read token ("" when none or unreadable).
func (c *Cache) Token() string {
	v, _, _ := c.st.Get(keyToken)
	return v
}

// SetToken stores the read token; "" removes it.
func (c *Cache) SetToken(t string) error {
	t = strings.TrimSpace(t)
	if t == "" {
		return c.wrap("removing the token", c.st.Remove(keyToken))
	}
	return c.wrap("saving the token", c.st.Set(keyToken, t))
}

// Forget removes everything the widget stored: the token, the chosen
// account and every account's cached response, so that removing the token
// leaves nothing of the server's data in this browser. It removes what it
// can and reports the first failure.
func (c *Cache) Forget() error {
	keys, err := c.st.Keys()
	if err != nil {
		// Without the list, at least the token and the known keys go.
		keys = []string{keyToken, keyAccount, fmt.Sprintf(keyLastFmt, "")}
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, keyPrefix) {
			continue
		}
		if rerr := c.st.Remove(k); rerr != nil && err == nil {
			err = rerr
		}
	}
	return c.wrap("removing the stored data", err)
}

// Account is the chosen account ("" for the server's default).
func (c *Cache) Account() string {
	v, _, _ := c.st.Get(keyAccount)
	return v
}

// SetAccount stores the chosen account.
func (c *Cache) SetAccount(a string) error {
	return c.wrap("saving the account", c.st.Set(keyAccount, a))
}

// SaveLast stores the last good response for its requested account.
func (c *Cache) SaveLast(account string, r *shared.UsageResponse, at time.Time) error {
	if r == nil {
		return errors.New("cache: nothing to save")
	}
	b, err := json.Marshal(Cached{SavedAt: at.UTC(), Response: r})
	if err != nil {
		return fmt.Errorf("cache: encoding the response: %w", err)
	}
	return c.wrap("saving the last response", c.st.Set(fmt.Sprintf(keyLastFmt, account), string(b)))
}

// LoadLast returns the last good response for account. A corrupt entry is
// removed and reported as missing, so that it cannot break every start.
func (c *Cache) LoadLast(account string) (Cached, bool) {
	key := fmt.Sprintf(keyLastFmt, account)
	v, ok, err := c.st.Get(key)
	if err != nil || !ok {
		return Cached{}, false
	}
	var e Cached
	if err := json.Unmarshal([]byte(v), &e); err != nil || e.Response == nil || len(e.Response.Meters) == 0 || e.SavedAt.IsZero() {
		_ = c.st.Remove(key)
		return Cached{}, false
	}
	return e, true
}

func (c *Cache) wrap(what string, err error) error {
	if err != nil {
		return fmt.Errorf("cache: %s: %w", what, err)
	}
	return nil
}

// TokenFromFragment reads a read token from a URL fragment such as
// "token=abc" or "#token=abc&x=1". It returns the token and the fragment
// without it (so that the token does not stay in the address bar or the
// history); ok is false when the fragment carries no token.
func TokenFromFragment(fragment string) (token, rest string, ok bool) {
	fragment = strings.TrimPrefix(fragment, "#")
	if fragment == "" {
		return "", fragment, false
	}
	var keep []string
	for _, part := range strings.Split(fragment, "&") {
		k, v, _ := strings.Cut(part, "=")
		if k == "token" && !ok {
			// Percent-decoding only: a fragment is not a query string,
			// and a '+' is part of a base64 token, not a space.
			t, err := url.PathUnescape(v)
			if err != nil {
				t = v
			}
			if t = strings.TrimSpace(t); t != "" {
				token, ok = t, true
				continue
			}
		}
		if part != "" {
			keep = append(keep, part)
		}
	}
	if !ok {
		return "", fragment, false
	}
	return token, strings.Join(keep, "&"), true
}
