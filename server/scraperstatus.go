package server

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/claude-usage/widget/shared"
)

// The scraper's reports are kept by the store (Store.SaveScraperStatus);
// this file is the HTTP side. Decoding and validation are shared's, so the
// scraper checks what it sends by the same rules.

// decodeScraperStatus parses the body strictly and validates it at now.
func (s *Server) decodeScraperStatus(body []byte) (shared.ScraperStatus, error) {
	st, err := shared.DecodeScraperStatus(body)
	if err != nil {
		return st, err
	}
	st.Normalize()
	if err := st.Validate(s.cfg.Now()); err != nil {
		return st, err
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
	// A status may create an account, so it counts against --max-accounts.
	release, err := s.st.ReserveAccount(ctx, st.Account, s.cfg.MaxAccounts)
	if err != nil {
		return err
	}
	defer release()
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
