package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/claude-usage/widget/shared"
)

// usageCache keeps encoded GET usage answers. A widget asks for the same
// version many times between two scrapes, and encoding the answer (JSON,
// ETag, Last-Modified) was most of the handler's time under load. The key
// holds everything the body depends on, so no entry ever needs to be
// invalidated; a version's snapshot never changes under its id.
type usageCache struct {
	mu sync.Mutex
	m  map[usageKey]*usageAnswer
}

// usageCacheMax bounds the cache: a reader walking history by ?version=
// must not grow it without limit. Clearing it all when full is enough,
// because a busy key comes back at the next request.
const usageCacheMax = 256

type usageKey struct {
	id         string
	current    int
	total      int
	ageSeconds int64
	stale      bool
	accounts   string
	scraper    shared.ScraperStatus
	hasScraper bool
	timeDiff   int64
	hasDiff    bool
}

type usageAnswer struct {
	body, etag, lastModified string
}

func keyOf(r *shared.UsageResponse) usageKey {
	k := usageKey{
		id: r.VersionInfo.ID, current: r.VersionInfo.Current, total: r.VersionInfo.Total,
		ageSeconds: r.AgeSeconds, stale: r.IsStale, accounts: strings.Join(r.Accounts, "\x00"),
	}
	if r.Scraper != nil {
		k.scraper, k.hasScraper = *r.Scraper, true
	}
	if r.TimeDiffSeconds != nil {
		k.timeDiff, k.hasDiff = *r.TimeDiffSeconds, true
	}
	return k
}

// answer returns the encoded answer for r, encoding it on a miss.
func (c *usageCache) answer(r *shared.UsageResponse) (*usageAnswer, error) {
	k := keyOf(r)
	c.mu.Lock()
	a := c.m[k]
	c.mu.Unlock()
	if a != nil {
		return a, nil
	}
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	a = &usageAnswer{body: string(body), etag: usageETag(*r),
		lastModified: r.VersionInfo.StoredAt.UTC().Format(http.TimeFormat)}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= usageCacheMax {
		c.m = make(map[usageKey]*usageAnswer)
	}
	c.m[k] = a
	c.mu.Unlock()
	return a, nil
}
