package server

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/claude-usage/widget/shared"
)

// guardRequests puts two checks in front of fiber, at the fasthttp server,
// because fiber never sees these requests in time:
//
//   - a method fiber does not know (e.g. "FOO") gets the contract's error
//     body; fiber's router would answer a plain-text 400 before any
//     middleware or ErrorHandler runs;
//   - Content-Length headers that disagree are marked as soon as the
//     headers are read (fasthttp would take the last one and wait for a
//     body that never comes, until the read timeout); the request then
//     reaches rejectConflictingLength with no body, on a connection that
//     closes after the answer.
func (s *Server) guardRequests() {
	srv := s.app.Server()
	srv.HeaderReceived = markConflictingLength
	known := make(map[string]bool, len(fiber.DefaultMethods))
	for _, m := range fiber.DefaultMethods {
		known[m] = true
	}
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

// headerConflict marks a request whose Content-Length headers disagree. It
// is set only by markConflictingLength, which first removes any copy a
// client sent.
const headerConflict = "X-Usage-Conflicting-Content-Length"

func markConflictingLength(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	h.Del(headerConflict)
	var first []byte
	conflict := false
	raw := h.RawHeaders()
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(k), []byte(fiber.HeaderContentLength)) {
			continue
		}
		v = bytes.TrimSpace(v)
		if first == nil {
			first = v
		} else if !bytes.Equal(first, v) {
			conflict = true
		}
	}
	if conflict {
		h.Set(headerConflict, "1")
		h.SetContentLength(0)
		h.SetConnectionClose()
	}
	return fasthttp.RequestConfig{}
}

// rejectConflictingLength answers a request marked by
// markConflictingLength.
func rejectConflictingLength(c *fiber.Ctx) error {
	if len(c.Request().Header.Peek(headerConflict)) == 0 {
		return c.Next()
	}
	return &shared.Error{Code: shared.CodeValidationFailed, Field: fiber.HeaderContentLength,
		Message: "the request has Content-Length headers with different values; send one"}
}
