package server

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// healthCache holds what /api/health reports, refreshed off the request
// path: the store's index view every IndexRefresh (and after each POST),
// the writability probe every HealthCheckInterval. The handler only reads
// it, so a hanging disk can never slow health down.
type healthCache struct {
	s *Server

	// refreshMu orders index refreshes so that an older read never
	// overwrites a newer one.
	refreshMu sync.Mutex

	mu       sync.RWMutex
	accounts map[string]accountView
	storage  storageView

	// checkStarted is the wall-clock start (UnixNano) of the probe in
	// flight, 0 when none; a probe running past its timeout means the
	// store ignored its context and the disk is hanging.
	checkStarted atomic.Int64
}

type accountView struct {
	count     int
	latest    time.Time // ScrapedAt of the latest version
	hasLatest bool
}

type storageView struct {
	status    store.Status
	checkErr  error
	checkedAt time.Time
}

func newHealthCache(s *Server) *healthCache {
	return &healthCache{s: s, accounts: map[string]accountView{}}
}

// start fills the cache once synchronously (the store has just been opened
// and ran its own startup check) and then keeps it fresh until ctx ends.
func (h *healthCache) start(ctx context.Context, wg *sync.WaitGroup) {
	h.refreshIndex(ctx)
	st := h.s.st.Status()
	h.mu.Lock()
	werr := st.WriteErr
	if !st.Writable && werr == nil {
		werr = errors.New("store reports storage not writable")
	}
	h.storage = storageView{status: st, checkErr: werr, checkedAt: h.s.cfg.mono()}
	h.mu.Unlock()

	wg.Add(2)
	go func() {
		defer wg.Done()
		h.loop(ctx, h.s.cfg.HealthCheckInterval, h.check)
	}()
	go func() {
		defer wg.Done()
		h.loop(ctx, h.s.cfg.IndexRefresh, h.refreshIndex)
	}()
}

func (h *healthCache) loop(ctx context.Context, every time.Duration, fn func(context.Context)) {
	t := time.NewTicker(every)
	defer t.Stop()
	fn(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// check runs canWriteToStorage bounded by HealthCheckTimeout.
func (h *healthCache) check(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	h.checkStarted.Store(h.s.cfg.mono().UnixNano())
	cctx, cancel := context.WithTimeout(ctx, h.s.cfg.HealthCheckTimeout)
	err := h.s.st.CheckWritable(cctx)
	cancel()
	st := h.s.st.Status()
	h.checkStarted.Store(0)
	if ctx.Err() != nil {
		return // shutting down: the result says nothing about the disk
	}
	if err == nil && !st.Writable && st.WriteErr != nil {
		err = st.WriteErr
	}
	h.mu.Lock()
	prev := h.storage
	h.storage = storageView{status: st, checkErr: err, checkedAt: h.s.cfg.mono()}
	h.mu.Unlock()
	switch {
	case err != nil && prev.checkErr == nil:
		h.s.log.Error("storage not writable", "dir", st.Dir, "error", err.Error())
	case err == nil && prev.checkErr != nil:
		h.s.log.Info("storage writable again", "dir", st.Dir)
	}
}

// refreshIndex reads the store's in-memory index. Latest is asked only for
// accounts whose count changed; refreshAccount covers a save that kept the
// count (retention removed one as it added one).
func (h *healthCache) refreshIndex(ctx context.Context) {
	h.refreshMu.Lock()
	defer h.refreshMu.Unlock()
	accounts := h.s.st.Accounts()
	h.mu.RLock()
	old := h.accounts
	h.mu.RUnlock()
	next := make(map[string]accountView, len(accounts))
	for _, a := range accounts {
		n := h.s.st.Count(a)
		if v, ok := old[a]; ok && v.count == n && v.hasLatest {
			next[a] = v
			continue
		}
		next[a] = h.readAccount(ctx, a, n)
	}
	h.mu.Lock()
	h.accounts = next
	h.mu.Unlock()
}

// refreshAccount updates one account right after a save, so health and
// metrics see a POST at once.
func (h *healthCache) refreshAccount(ctx context.Context, account string) {
	h.refreshMu.Lock()
	defer h.refreshMu.Unlock()
	v := h.readAccount(ctx, account, h.s.st.Count(account))
	h.mu.Lock()
	next := make(map[string]accountView, len(h.accounts)+1)
	for k, x := range h.accounts {
		next[k] = x
	}
	next[account] = v
	h.accounts = next
	h.mu.Unlock()
}

func (h *healthCache) readAccount(ctx context.Context, account string, n int) accountView {
	v := accountView{count: n}
	if n == 0 {
		return v
	}
	if lv, err := h.s.st.Latest(ctx, account); err == nil {
		v.latest, v.hasLatest = lv.Snapshot.ScrapedAt, true
	}
	return v
}

// view is a consistent copy of the cache.
func (h *healthCache) view() (map[string]accountView, storageView) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.accounts, h.storage
}

// writable reports the probe result, treating a probe stuck past its
// timeout as a failure.
func (h *healthCache) writable(sv storageView) (bool, string) {
	if started := h.checkStarted.Load(); started != 0 {
		if d := h.s.cfg.mono().Sub(time.Unix(0, started)); d > h.s.cfg.HealthCheckTimeout {
			return false, fmt.Sprintf("storage check has not finished after %s", d.Round(time.Second))
		}
	}
	if sv.checkErr != nil {
		return false, sv.checkErr.Error()
	}
	return true, ""
}

// Report builds the health body at now from cached data only.
func (s *Server) Report(now time.Time) shared.HealthResponse {
	accounts, sv := s.health.view()
	writable, werr := s.health.writable(sv)

	r := shared.HealthResponse{
		Status: shared.HealthHealthy,
		Storage: shared.HealthStorage{
			Status:       "ok",
			Writable:     writable,
			FreeBytes:    sv.status.FreeBytes,
			Dir:          sv.status.Dir,
			CorruptFiles: sv.status.CorruptFiles,
			Breaker:      sv.status.Breaker.String(),
			Error:        werr,
		},
		Timestamp: now.UTC().Truncate(time.Second),
	}
	worsen := func(status, reason string) {
		if rank(status) > rank(r.Status) {
			r.Status = status
		}
		r.Reasons = append(r.Reasons, reason)
	}

	var newest time.Time
	for _, v := range accounts {
		r.VersionCount += v.count
		if v.hasLatest && v.latest.After(newest) {
			newest = v.latest
		}
	}
	if newest.IsZero() {
		worsen(shared.HealthUnhealthy, "no data stored yet: start the scraper")
	} else {
		age := max(now.Sub(newest), 0)
		secs := int64(age / time.Second)
		r.LatestDataAge = &secs
		if st := shared.HealthStatusFor(age); st != shared.HealthHealthy {
			worsen(st, fmt.Sprintf("latest data is %s old (degraded from %s, unhealthy after %s)",
				age.Round(time.Second), shared.StaleAfter, shared.UnhealthyAfter))
		}
	}
	if !writable {
		r.Storage.Status = "error"
		worsen(shared.HealthUnhealthy, "storage not writable: "+werr)
	}
	switch sv.status.Breaker {
	case shared.StateOpen:
		r.Storage.Status = "unavailable"
		worsen(shared.HealthUnhealthy, "store breaker open: storage failed repeatedly")
	case shared.StateHalfOpen:
		worsen(shared.HealthDegraded, "store breaker half-open: probing storage")
	}
	if sv.status.CorruptFiles > 0 {
		r.Reasons = append(r.Reasons, fmt.Sprintf("%d corrupt files quarantined", sv.status.CorruptFiles))
	}

	statuses := s.status.all()
	sort.SliceStable(statuses, func(i, j int) bool { return statuses[i].At.After(statuses[j].At) })
	for i, st := range statuses {
		if i == 0 {
			at := st.At
			r.Scraper.LastSeen = &at
		}
		if !st.OK && r.Scraper.LastError == nil {
			e := st
			r.Scraper.LastError = &e
			r.Reasons = append(r.Reasons, fmt.Sprintf("scraper for %s reports %s: %s", st.Account, st.Category, truncateRunes(st.Message, 200)))
		}
	}
	return r
}

func rank(status string) int {
	switch status {
	case shared.HealthUnhealthy:
		return 2
	case shared.HealthDegraded:
		return 1
	}
	return 0
}

func (s *Server) getHealth(c *fiber.Ctx) error {
	r := s.Report(s.cfg.Now())
	code := fiber.StatusOK
	if r.Status == shared.HealthUnhealthy {
		code = fiber.StatusServiceUnavailable
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(code).JSON(r)
}
