package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/claude-usage/widget/shared"
)

// The scraper's reports are kept by the store (Store.SaveScraperStatus);
// this file is the HTTP side: strict decoding and the checks the store
// cannot make (the server's clock, the category's shape).

var categoryPattern = regexp.MustCompile(`^[A-Z][A-Z_]{0,31}$`)

// decodeScraperStatus parses the body strictly and validates it at now.
func (s *Server) decodeScraperStatus(body []byte) (shared.ScraperStatus, error) {
	var st shared.ScraperStatus
	vfail := func(field, format string, args ...any) error {
		return &shared.ValidationError{Problems: []shared.FieldError{{Field: field, Reason: fmt.Sprintf(format, args...)}}}
	}
	if !utf8.Valid(body) {
		return st, vfail("body", "must be valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return st, vfail(te.Field, "has the wrong type: %s", te.Value)
		}
		if _, rest, ok := strings.Cut(err.Error(), `unknown field "`); ok {
			if name, _, ok := strings.Cut(rest, `"`); ok && name != "" {
				return st, vfail(truncateRunes(name, 60), "is not a known field")
			}
		}
		return st, vfail("body", "is not a valid scraper status: %s", truncateRunes(err.Error(), 200))
	}
	if dec.More() {
		return st, vfail("body", "must contain exactly one JSON object")
	}
	if st.Account == "" {
		st.Account = shared.DefaultAccount
	}
	st.At = st.At.UTC()
	now := s.cfg.Now()
	switch {
	case !shared.AccountPattern.MatchString(st.Account):
		return st, vfail("account", "must match %s, got %q", shared.AccountPattern, truncateRunes(st.Account, 80))
	case st.At.IsZero():
		return st, vfail("at", "is required")
	case st.At.Year() < 2000 || st.At.Year() > 9999:
		return st, vfail("at", "must be a time in the years 2000–9999 (UTC), got %s", st.At.Format("2006-01-02T15:04:05Z07:00"))
	case st.At.After(now.Add(shared.MaxFutureSkew)):
		return st, vfail("at", "must not be more than 5 min in the future, got %s", st.At.Format("2006-01-02T15:04:05Z07:00"))
	case st.Category != "" && !categoryPattern.MatchString(st.Category):
		return st, vfail("category", "must be an upper-case code such as NOT_LOGGED_IN, got %q", truncateRunes(st.Category, 40))
	case !st.OK && st.Category == "":
		return st, vfail("category", "is required when ok is false")
	case utf8.RuneCountInString(st.Message) > 500:
		return st, vfail("message", "must be at most 500 characters")
	}
	return st, nil
}

func (s *Server) postScraperStatus(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	st, err := s.decodeScraperStatus(c.Body())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.SaveTimeout)
	defer cancel()
	kept, err := s.st.SaveScraperStatus(ctx, st)
	if err != nil {
		return err
	}
	if kept {
		s.log.Info("scraper status", "requestId", requestID(c), "account", st.Account,
			"ok", st.OK, "category", st.Category, "at", st.At)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// scraperStatus is the account's latest report for GET answers, nil when
// the scraper has not reported.
func (s *Server) scraperStatus(account string) *shared.ScraperStatus {
	if account == "" {
		account = shared.DefaultAccount
	}
	st, ok := s.st.ScraperStatus(account)
	if !ok {
		return nil
	}
	return &st
}
