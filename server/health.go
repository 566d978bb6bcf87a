package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// Health reads the store's in-memory figures on every request; only the
// write check touches the disk, and it is bounded: a result at most
// healthMaxAge old is reused; otherwise the request that finds it stale
// starts a check and waits at most healthWait for it, and requests meanwhile
// answer from memory without waiting. A hung disk is reported by the
// store's own stuck-probe rule (store.ProbeStuckAfter) while its check goes
// on.
const (
	healthMaxAge = time.Second
	healthWait   = 50 * time.Millisecond
)

// storeStatus is the store's status with a write check at most healthMaxAge
// old, or as fresh as healthWait allows.
func (s *Server) storeStatus(ctx context.Context) store.Status {
	st := s.st.Status()
	if st.Checking || time.Since(st.CheckedAt) <= healthMaxAge {
		return st
	}
	cctx, cancel := context.WithTimeout(ctx, healthWait)
	_ = s.st.CheckWritable(cctx) // the result is in Status, with the stuck-probe rule applied
	cancel()
	return s.st.Status()
}

// report builds the health body at now from st. detail adds what only an
// operator may see: the directory, the free bytes, and error messages,
// which carry paths and page titles.
func report(st store.Status, now time.Time, detail bool) shared.HealthResponse {
	r := shared.HealthResponse{
		Status: shared.HealthHealthy,
		Storage: shared.HealthStorage{
			Status:       "ok",
			Writable:     st.Writable,
			CorruptFiles: st.CorruptFiles,
			Breaker:      st.Breaker.String(),
		},
		Timestamp: now.UTC().Truncate(time.Second),
	}
	if detail {
		free := st.FreeBytes
		r.Storage.FreeBytes, r.Storage.Dir = &free, st.Dir
		if st.WriteErr != nil {
			r.Storage.Error = st.WriteErr.Error()
		}
	}
	worsen := func(status, reason string) {
		if rank(status) > rank(r.Status) {
			r.Status = status
		}
		r.Reasons = append(r.Reasons, reason)
	}

	var newest time.Time
	for _, a := range st.Accounts {
		r.VersionCount += a.Count
		if a.Latest.After(newest) {
			newest = a.Latest
		}
	}
	if newest.IsZero() {
		worsen(shared.HealthUnhealthy, "no data stored yet: start the scraper")
	} else {
		age := max(now.Sub(newest), 0)
		secs := int64(age / time.Second)
		r.LatestDataAge = &secs
		if h := shared.HealthStatusFor(age); h != shared.HealthHealthy {
			worsen(h, fmt.Sprintf("latest data is %s old (degraded from %s, unhealthy after %s)",
				age.Round(time.Second), shared.StaleAfter, shared.UnhealthyAfter))
		}
	}
	if !st.Writable {
		r.Storage.Status = "error"
		worsen(shared.HealthUnhealthy, "storage not writable ("+string(codeOf(st.WriteErr))+")")
	}
	switch st.Breaker {
	case shared.StateOpen:
		r.Storage.Status = "unavailable"
		worsen(shared.HealthUnhealthy, "store breaker open: storage failed repeatedly")
	case shared.StateHalfOpen:
		worsen(shared.HealthDegraded, "store breaker half-open: probing storage")
	}
	if st.CorruptFiles > 0 {
		r.Reasons = append(r.Reasons, fmt.Sprintf("%d corrupt files quarantined", st.CorruptFiles))
	}

	// Each account's latest report counts: one saying the scraper cannot
	// read the page (logged out, page changed) explains data that is about
	// to go stale, so health says so before the age does.
	var lastErr *shared.ScraperStatus
	for _, sc := range st.Scrapers {
		if r.Scraper.LastSeen == nil || sc.At.After(*r.Scraper.LastSeen) {
			at := sc.At
			r.Scraper.LastSeen = &at
		}
		if sc.OK {
			continue
		}
		worsen(shared.HealthDegraded, fmt.Sprintf("scraper for %s reports %s", sc.Account, sc.Category))
		if lastErr == nil || sc.At.After(lastErr.At) {
			e := sc
			if !detail {
				e.Message = ""
			}
			lastErr = &e
		}
	}
	r.Scraper.LastError = lastErr
	return r
}

func codeOf(err error) shared.Code {
	var se *shared.Error
	if errors.As(err, &se) {
		return se.Code
	}
	return shared.CodeStorageWriteFailed
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

// healthDetail reports whether the request carries the read or the metrics
// token. A bearer token that matches neither is an authentication failure
// like on any other route, so that health is no oracle for guessing tokens.
func (s *Server) healthDetail(c *fiber.Ctx) (bool, error) {
	if c.Get(fiber.HeaderAuthorization) == "" {
		return false, nil
	}
	err := s.limitedCheck(c, func() error {
		tok, ok := bearer(c)
		k := s.keys()
		if ok && ((k.read != "" && constantEqual(tok, k.read)) ||
			(k.metrics != "" && constantEqual(tok, k.metrics))) {
			return nil
		}
		return &shared.Error{Code: shared.CodeAuthInvalidKey,
			Message: "the bearer token matches neither the read token nor the metrics token; omit it for the public health"}
	})
	return err == nil, err
}

func (s *Server) getHealth(c *fiber.Ctx) error {
	// Public, but a token sent in the URL is refused like everywhere else.
	if err := rejectQueryCredentials(c); err != nil {
		return err
	}
	detail, err := s.healthDetail(c)
	if err != nil {
		return err
	}
	r := report(s.storeStatus(c.UserContext()), s.cfg.Now(), detail)
	code := fiber.StatusOK
	if r.Status == shared.HealthUnhealthy {
		code = fiber.StatusServiceUnavailable
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(code).JSON(r)
}
