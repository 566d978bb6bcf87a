package server

import (
	"container/list"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/claude-usage/widget/shared"
)

// authTableSize bounds the failed-authentication table: a flood of wrong
// keys from many addresses costs at most this many entries (well under a
// MiB), the least recently seen address making room for a new one.
const authTableSize = 4096

// authLimiter counts failed authentications per client address in a fixed
// window that starts with the first failure. Once an address has failed
// max times, every authenticated request from it is refused until its
// window ends, whatever key or token it carries, so that guessing costs a
// window per max guesses. Valid requests are never counted.
type authLimiter struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[netip.Addr]*list.Element
	lru     list.List // of *authEntry, most recent first
}

type authEntry struct {
	key      netip.Addr
	start    time.Time
	failures int
}

func newAuthLimiter(max int, window time.Duration, now func() time.Time) *authLimiter {
	l := &authLimiter{max: max, window: window, now: now, entries: make(map[netip.Addr]*list.Element, authTableSize)}
	l.lru.Init()
	return l
}

// limitKey groups the addresses one client controls: an IPv6 host usually
// has a whole /64, so it counts as one.
func limitKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// wait returns how long a refused address must still wait; 0 when it may
// try.
func (l *authLimiter) wait(a netip.Addr) time.Duration {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.entries[limitKey(a)]
	if !ok {
		return 0
	}
	e := el.Value.(*authEntry)
	end := e.start.Add(l.window)
	if !now.Before(end) {
		l.lru.Remove(el)
		delete(l.entries, e.key)
		return 0
	}
	if e.failures < l.max {
		return 0
	}
	return end.Sub(now)
}

// fail counts one failed authentication from a.
func (l *authLimiter) fail(a netip.Addr) {
	now := l.now()
	k := limitKey(a)
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.entries[k]; ok {
		e := el.Value.(*authEntry)
		if !now.Before(e.start.Add(l.window)) {
			e.start, e.failures = now, 0
		}
		e.failures++
		l.lru.MoveToFront(el)
		return
	}
	if l.lru.Len() >= authTableSize {
		old := l.lru.Back()
		delete(l.entries, old.Value.(*authEntry).key)
		l.lru.Remove(old)
	}
	l.entries[k] = l.lru.PushFront(&authEntry{key: k, start: now, failures: 1})
}

// size is the number of addresses held, for tests of the bound.
func (l *authLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// authorize runs check (a key comparison) unless the client is refused for
// too many failures, and counts a failure against its address.
func (s *Server) authorize(c *fiber.Ctx, check func() error) error {
	if err := s.limitedCheck(c, check); err != nil {
		return err
	}
	return c.Next()
}

// limitedCheck is authorize without passing the request on: for handlers
// (health) where a credential is optional but a wrong one must count.
func (s *Server) limitedCheck(c *fiber.Ctx, check func() error) error {
	if err := rejectQueryCredentials(c); err != nil {
		return err
	}
	ip := s.clientAddr(c)
	if d := s.authLimit.wait(ip); d > 0 {
		s.metrics.authLimited.Inc()
		secs := strconv.Itoa(int(math.Ceil(d.Seconds())))
		c.Set(fiber.HeaderRetryAfter, secs)
		c.Set("X-RateLimit-Limit", strconv.Itoa(s.cfg.AuthFailures))
		c.Set("X-RateLimit-Remaining", "0")
		c.Set("X-RateLimit-Reset", secs)
		return &shared.Error{Code: shared.CodeRateLimited,
			Message: fmt.Sprintf("more than %d failed authentications from this address within %s; retry in %s s",
				s.cfg.AuthFailures, s.cfg.AuthWindow, secs),
			Suggestion: "Check the key or token this client sends; it is refused until Retry-After has passed."}
	}
	if err := check(); err != nil {
		s.authLimit.fail(ip)
		s.metrics.authFailures.Inc()
		return err
	}
	return nil
}

// rejectQueryCredentials refuses a key or token in the query string before
// any key is looked at: a URL ends up in proxy logs and browser history, and
// the client should learn where to send it, not that it is missing.
func rejectQueryCredentials(c *fiber.Ctx) error {
	var bad string
	c.Context().QueryArgs().VisitAll(func(k, _ []byte) {
		if bad == "" && credentialParams[strings.ToLower(string(k))] {
			bad = truncateRunes(string(k), 40)
		}
	})
	if bad == "" {
		return nil
	}
	return &shared.Error{Code: shared.CodeInvalidQuery, Field: bad,
		Message: "credentials are not accepted in the query string; send them in a header (X-API-Key, or Authorization: Bearer <token>)"}
}

// parseProxies reads --trusted-proxies: IPs and CIDRs.
func parseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range list {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if pre, err := netip.ParsePrefix(p); err == nil {
			out = append(out, pre.Masked())
			continue
		}
		a, err := netip.ParseAddr(p)
		if err != nil {
			return nil, fmt.Errorf("server: trusted proxy %q is neither an IP nor a CIDR", p)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address a request comes from. Behind a trusted proxy it
// is the rightmost X-Forwarded-For entry that is not itself a trusted
// proxy: each proxy appends the address it saw, so entries left of that
// one were written by the client and prove nothing.
func (s *Server) clientAddr(c *fiber.Ctx) netip.Addr {
	remote, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	remote = remote.Unmap()
	if len(s.proxies) == 0 || !s.trusted(remote) {
		return remote
	}
	var hops []string
	c.Request().Header.VisitAll(func(k, v []byte) {
		if strings.EqualFold(string(k), fiber.HeaderXForwardedFor) {
			hops = append(hops, strings.Split(string(v), ",")...)
		}
	})
	client := remote
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		a, err := netip.ParseAddr(h)
		if err != nil {
			ap, perr := netip.ParseAddrPort(h)
			if perr != nil {
				return client // garbage: the last hop a proxy vouched for
			}
			a = ap.Addr()
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a
		}
		client = a
	}
	return client
}
