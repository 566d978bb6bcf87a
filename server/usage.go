package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// requireJSON rejects bodies that are not declared as JSON.
func requireJSON(c *fiber.Ctx) error {
	ct := c.Get(fiber.HeaderContentType)
	if ct == "" {
		return &shared.Error{Code: shared.CodeUnsupportedMediaType,
			Message: "missing Content-Type; send the body as application/json"}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return &shared.Error{Code: shared.CodeUnsupportedMediaType,
			Message: fmt.Sprintf("Content-Type %q cannot be parsed; send application/json", truncateRunes(ct, 100))}
	}
	if mt != fiber.MIMEApplicationJSON && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return &shared.Error{Code: shared.CodeUnsupportedMediaType,
			Message: fmt.Sprintf("Content-Type %q is not JSON; send application/json", truncateRunes(mt, 100))}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return &shared.Error{Code: shared.CodeUnsupportedMediaType,
			Message: fmt.Sprintf("charset %q is not supported; send UTF-8", truncateRunes(cs, 40))}
	}
	return nil
}

// BodyHash is the idempotency fingerprint of a snapshot: the SHA-256 of its
// canonical re-encoding after Normalize, so that formatting differences of
// the same snapshot do not count as a different body.
func BodyHash(s shared.Snapshot) (string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("server: encoding snapshot for its hash: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func (s *Server) postUsage(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	// Cloned: the store keeps the key, and c.Get points into a buffer
	// fasthttp reuses for the next request.
	idem := strings.Clone(c.Get(shared.HeaderIdempotencyKey))
	if idem != "" && !validToken(idem, 128) {
		return &shared.Error{Code: shared.CodeValidationFailed, Field: shared.HeaderIdempotencyKey,
			Message: "Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 . _ : -"}
	}
	snap, err := decodeSnapshot(c.Body())
	if err != nil {
		return err
	}
	snap.Normalize()
	if err := snap.Validate(s.cfg.Now()); err != nil {
		return err
	}
	hash, err := BodyHash(snap)
	if err != nil {
		return err
	}
	// Bounded so that a request queued behind a hanging write gives up with
	// a storage error instead of holding its connection forever.
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.SaveTimeout)
	defer cancel()
	release, err := s.st.ReserveAccount(ctx, snap.Account, s.cfg.MaxAccounts)
	if err != nil {
		return err
	}
	defer release()
	start := time.Now()
	res, err := s.st.Save(ctx, store.SaveRequest{Snapshot: snap, IdempotencyKey: idem, BodyHash: hash})
	s.metrics.observeWrite(time.Since(start), err)
	if err != nil {
		return err
	}
	out := shared.PostResult{
		Success:   true,
		Version:   res.Version.Number,
		ID:        res.Version.ID,
		StoredAt:  res.Version.StoredAt.UTC(),
		RequestID: requestID(c),
	}
	if res.Replayed {
		s.metrics.replays.Inc()
		c.Set(shared.HeaderIdempotentReplayed, "true")
		return c.Status(fiber.StatusOK).JSON(out)
	}
	s.log.Info("snapshot stored", "requestId", out.RequestID, "account", snap.Account,
		"id", out.ID, "version", out.Version, "meters", len(snap.Meters), "partial", snap.Partial)
	return c.Status(fiber.StatusCreated).JSON(out)
}

// credentialParams are query names that look like credentials; they get a
// pointed message instead of the generic unknown-parameter one.
var credentialParams = map[string]bool{
	"token": true, "access_token": true, "api_key": true, "apikey": true,
	"key": true, "read_token": true, "auth": true,
}

// parseQuery returns the query parameters, rejecting unknown, repeated and
// empty ones so that a typo never silently returns the wrong data.
func parseQuery(c *fiber.Ctx, allowed ...string) (map[string]string, error) {
	out := map[string]string{}
	var qerr error
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		if qerr != nil {
			return
		}
		key := string(k)
		switch {
		case credentialParams[strings.ToLower(key)]:
			qerr = &shared.Error{Code: shared.CodeInvalidQuery, Field: truncateRunes(key, 40),
				Message: "credentials are not accepted in the query string; send Authorization: Bearer <token>"}
		case !contains(allowed, key):
			qerr = &shared.Error{Code: shared.CodeInvalidQuery, Field: truncateRunes(key, 40),
				Message: fmt.Sprintf("unknown query parameter %q; allowed: %s", truncateRunes(key, 40), strings.Join(allowed, ", "))}
		default:
			if _, dup := out[key]; dup {
				qerr = &shared.Error{Code: shared.CodeInvalidQuery, Field: key,
					Message: fmt.Sprintf("query parameter %s is given more than once", key)}
				return
			}
			out[key] = string(v)
		}
	})
	return out, qerr
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func queryErr(field, format string, args ...any) error {
	return &shared.Error{Code: shared.CodeInvalidQuery, Field: field, Message: fmt.Sprintf(format, args...)}
}

func parseAccount(q map[string]string) (string, error) {
	a, ok := q["account"]
	if !ok {
		return shared.DefaultAccount, nil
	}
	if !shared.AccountPattern.MatchString(a) {
		return "", queryErr("account", "account must match %s, got %q", shared.AccountPattern, truncateRunes(a, 80))
	}
	return a, nil
}

func parseTime(q map[string]string, name string) (time.Time, bool, error) {
	v, ok := q[name]
	if !ok {
		return time.Time{}, false, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, false, queryErr(name, "%s must be an RFC 3339 time such as 2026-11-28T13:50:00Z, got %q", name, truncateRunes(v, 60))
	}
	// Validate has checked the snapshot's times; a query's time gets the
	// same rule (years 2000–9999 in UTC, the range RFC 3339 can encode).
	if err := shared.CheckTime(name, t); err != nil {
		var verr *shared.ValidationError
		if errors.As(err, &verr) && len(verr.Problems) > 0 {
			return time.Time{}, false, queryErr(name, "%s %s", name, verr.Problems[0].Reason)
		}
		return time.Time{}, false, queryErr(name, "%s is out of range", name)
	}
	return t.UTC(), true, nil
}

func (s *Server) getUsage(c *fiber.Ctx) error {
	q, err := parseQuery(c, "account", "version", "timestamp")
	if err != nil {
		return err
	}
	account, err := parseAccount(q)
	if err != nil {
		return err
	}
	ts, hasTS, err := parseTime(q, "timestamp")
	if err != nil {
		return err
	}
	vs, hasVersion := q["version"]
	var n int
	if hasVersion {
		if hasTS {
			return queryErr("version", "use either version or timestamp, not both")
		}
		n, err = strconv.Atoi(vs)
		if err != nil || n == 0 {
			return queryErr("version", "version must be a non-zero integer (1 = oldest, -1 = latest), got %q", truncateRunes(vs, 40))
		}
	}

	ctx := c.UserContext()
	var v store.Version
	switch {
	case hasVersion:
		v, err = s.st.ByNumber(ctx, account, n)
	case hasTS:
		v, err = s.st.Nearest(ctx, account, ts)
	default:
		v, err = s.st.Latest(ctx, account)
	}
	if err != nil {
		return err
	}

	resp := s.usageResponse(v, account)
	if hasTS {
		// Signed: negative when the version was scraped before the asked time.
		d := int64(v.Snapshot.ScrapedAt.Sub(ts).Round(time.Second) / time.Second)
		resp.TimeDiffSeconds = &d
	}

	ans, err := s.usageCache.answer(&resp)
	if err != nil {
		return fmt.Errorf("server: encoding the usage answer: %w", err)
	}
	etag := ans.etag
	c.Set(fiber.HeaderETag, etag)
	c.Set(fiber.HeaderLastModified, ans.lastModified)
	c.Set(fiber.HeaderVary, "Authorization, X-API-Key")
	if !hasVersion && !hasTS && !resp.IsStale {
		// Fresh latest data: a short private cache saves the widget a round
		// trip; stale or historic answers are always revalidated.
		c.Set(fiber.HeaderCacheControl, "private, max-age=10")
	} else {
		c.Set(fiber.HeaderCacheControl, "private, no-cache")
	}
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Status(fiber.StatusOK).SendString(ans.body)
}

// usageResponse is the GET usage answer for v, as GET latest and the
// stream send it. Pace is computed at the version's scrapedAt, so it
// depends on the version alone and the answer cache's key (the version's
// id) still covers everything the body holds.
func (s *Server) usageResponse(v store.Version, account string) shared.UsageResponse {
	age := max(s.cfg.Now().Sub(v.Snapshot.ScrapedAt), 0)
	snap := v.Snapshot
	snap.Meters = shared.WithPace(snap.Meters, snap.ScrapedAt)
	return shared.UsageResponse{
		Snapshot:   snap,
		IsStale:    age >= shared.StaleAfter,
		AgeSeconds: int64(age / time.Second),
		VersionInfo: shared.VersionInfo{
			Current: v.Number, Total: v.Total, ID: v.ID, StoredAt: v.StoredAt.UTC(),
		},
		Accounts: s.st.Accounts(),
		Scraper:  s.scraperStatus(account),
	}
}

// latestAnswer is GET latest's encoded body for account.
func (s *Server) latestAnswer(ctx context.Context, account string) (*usageAnswer, error) {
	v, err := s.st.Latest(ctx, account)
	if err != nil {
		return nil, err
	}
	resp := s.usageResponse(v, account)
	return s.usageCache.answer(&resp)
}

// usageETag is weak on purpose: ageSeconds changes every second while the
// data does not, so the representation is only semantically equivalent.
// It changes with the version, its place in history, staleness, the
// scraper status and the account list.
func usageETag(r shared.UsageResponse) string {
	h := sha256.New()
	// "pace": answers from before pace was added must not revalidate.
	fmt.Fprintf(h, "pace|%s|%d|%d|%t|%s", r.VersionInfo.ID, r.VersionInfo.Current, r.VersionInfo.Total, r.IsStale, strings.Join(r.Accounts, ","))
	if r.TimeDiffSeconds != nil {
		fmt.Fprintf(h, "|td%d", *r.TimeDiffSeconds)
	}
	if r.Scraper != nil {
		b, _ := json.Marshal(r.Scraper)
		h.Write(b)
	}
	return `W/"` + hex.EncodeToString(h.Sum(nil)[:12]) + `"`
}

// etagMatches is If-None-Match's weak comparison.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, part := range strings.Split(header, ",") {
		p := strings.TrimSpace(part)
		if p == "*" || strings.TrimPrefix(p, "W/") == want {
			return true
		}
	}
	return false
}

func (s *Server) getHistory(c *fiber.Ctx) error {
	q, err := parseQuery(c, "account", "since", "limit")
	if err != nil {
		return err
	}
	account, err := parseAccount(q)
	if err != nil {
		return err
	}
	since, _, err := parseTime(q, "since")
	if err != nil {
		return err
	}
	limit := 500
	if v, ok := q["limit"]; ok {
		limit, err = strconv.Atoi(v)
		if err != nil || limit < 1 || limit > shared.MaxHistoryPoints {
			return queryErr("limit", "limit must be an integer from 1 to %d, got %q", shared.MaxHistoryPoints, truncateRunes(v, 40))
		}
	}
	if s.st.Count(account) == 0 {
		return &shared.Error{Code: shared.CodeNoData,
			Message: fmt.Sprintf("no snapshots stored for account %q yet", account)}
	}
	vs, err := s.st.History(c.UserContext(), account, since, limit)
	if err != nil {
		return err
	}
	resp := shared.HistoryResponse{Account: account, Points: make([]shared.HistoryPoint, 0, len(vs))}
	for _, v := range vs {
		m := make(map[string]float64, len(v.Snapshot.Meters))
		for _, mt := range v.Snapshot.Meters {
			m[mt.ID] = mt.PercentUsed
		}
		resp.Points = append(resp.Points, shared.HistoryPoint{
			StoredAt: v.StoredAt.UTC(), ScrapedAt: v.Snapshot.ScrapedAt.UTC(), Meters: m,
		})
	}
	sort.SliceStable(resp.Points, func(i, j int) bool { return resp.Points[i].ScrapedAt.Before(resp.Points[j].ScrapedAt) })
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.Status(fiber.StatusOK).JSON(resp)
}
