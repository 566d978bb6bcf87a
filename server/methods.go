package server

import (
	"encoding/json"
	"fmt"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/claude-usage/widget/shared"
)

// guardMethods answers a request whose method fiber does not know (e.g.
// "FOO") with the contract's error body. fiber's router rejects such a
// request with a plain-text 400 before any middleware or ErrorHandler runs,
// so the check has to sit in front of fiber, at the fasthttp handler.
func (s *Server) guardMethods() {
	known := make(map[string]bool, len(fiber.DefaultMethods))
	for _, m := range fiber.DefaultMethods {
		known[m] = true
	}
	srv := s.app.Server()
	inner := srv.Handler
	srv.Handler = func(c *fasthttp.RequestCtx) {
		if known[string(c.Method())] {
			inner(c)
			return
		}
		id := newRequestID()
		method := truncateRunes(string(c.Method()), 40)
		e := &shared.Error{Code: shared.CodeMethodNotAllowed,
			Message: fmt.Sprintf("method %q is not an HTTP method this server knows", method)}
		body, _ := json.Marshal(e.Body(id, s.cfg.Now()))
		c.Response.Header.Set(shared.HeaderRequestID, id)
		c.Response.Header.Set(fiber.HeaderAllow, "GET, HEAD, POST")
		c.SetContentType(fiber.MIMEApplicationJSONCharsetUTF8)
		c.SetStatusCode(shared.CodeMethodNotAllowed.Status())
		c.SetBody(body)
		s.log.Warn("request", "component", "server", "requestId", id, "method", method,
			"path", truncateRunes(string(c.Path()), 200), "status", c.Response.StatusCode())
	}
}
