package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/limiter"
	"github.com/rs/xid"

	"github.com/claude-usage/widget/shared"
)

// Locals keys.
const (
	localRequestID = "requestid"
	localPanicked  = "panicked"
	localLogged    = "accessLogged"
)

func newRequestID() string { return xid.New().String() }

// requestID returns the request's ID, or "" before the requestid middleware
// ran (errors raised by fasthttp itself, such as an oversize body).
func requestID(c *fiber.Ctx) string {
	if v, ok := c.Locals(localRequestID).(string); ok {
		return v
	}
	return ""
}

// sanitizeRequestID drops a client-sent X-Request-ID that is not an xid
// (what the scraper sends and what the server makes), so that nothing a
// client chooses is echoed into logs or headers. A valid one is kept to
// correlate with the client's logs.
func sanitizeRequestID(c *fiber.Ctx) error {
	if v := c.Get(shared.HeaderRequestID); v != "" {
		if _, err := xid.FromString(v); err != nil {
			c.Request().Header.Del(shared.HeaderRequestID)
		}
	}
	return c.Next()
}

// validToken reports whether v is 1..max characters of [A-Za-z0-9._:-].
func validToken(v string, max int) bool {
	if len(v) == 0 || len(v) > max {
		return false
	}
	for i := 0; i < len(v); i++ {
		b := v[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9',
			b == '.', b == '_', b == ':', b == '-':
		default:
			return false
		}
	}
	return true
}

// accessLog writes one JSON line per request and records request metrics.
// It runs the error handler itself so that it sees the final status.
func (s *Server) accessLog(c *fiber.Ctx) error {
	start := time.Now()
	if err := c.Next(); err != nil {
		if herr := s.app.ErrorHandler(c, err); herr != nil {
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	s.logRequest(c, start)
	return nil
}

// responseBytes is the body's length, 0 for a stream (…/stream): reading
// a stream's body would wait for its end and keep it all in memory.
func responseBytes(c *fiber.Ctx) int {
	if c.Response().IsBodyStream() {
		return 0
	}
	return len(c.Response().Body())
}

func (s *Server) logRequest(c *fiber.Ctx, start time.Time) {
	if c.Locals(localLogged) == true {
		return
	}
	c.Locals(localLogged, true)
	status := c.Response().StatusCode()
	route := s.routeLabel(c, status)
	d := time.Since(start)
	s.metrics.observeRequest(route, c.Method(), status, d)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	} else if route == shared.PathHealth || route == shared.PathMetrics {
		// Monitors poll these; keep them out of the info log.
		level = slog.LevelDebug
	}
	if !s.log.Enabled(c.UserContext(), level) {
		return // the line would be dropped; don't build it
	}
	attrs := []slog.Attr{
		slog.String("requestId", requestID(c)),
		slog.String("method", c.Method()),
		slog.String("route", route),
		slog.String("path", truncateRunes(c.Path(), 200)),
		slog.Int("status", status),
		slog.Float64("durationMs", float64(d.Microseconds())/1000),
		slog.String("ip", s.clientAddr(c).String()),
		slog.Int("bytes", responseBytes(c)),
	}
	if s.cfg.Verbose {
		attrs = append(attrs, s.verboseAttrs(c)...)
	}
	// The record is handed to the handler directly: Logger.LogAttrs would
	// walk the stack for a source position that is never printed, once per
	// request.
	r := slog.NewRecord(time.Now(), level, "request", 0)
	r.AddAttrs(attrs...)
	_ = s.log.Handler().Handle(c.UserContext(), r)
}

// verboseAttrs is SYNC_VERBOSE's request/response detail. Credentials are
// never logged: headers that carry them and the values of query
// parameters named like them are reduced to "[redacted]".
func (s *Server) verboseAttrs(c *fiber.Ctx) []slog.Attr {
	headers := map[string]string{}
	c.Request().Header.VisitAll(func(k, v []byte) {
		key := string(k)
		switch strings.ToLower(key) {
		case "x-api-key", "authorization", "proxy-authorization", "cookie":
			headers[key] = redacted
		default:
			headers[key] = truncateRunes(string(v), 200)
		}
	})
	attrs := []slog.Attr{
		slog.String("query", truncateRunes(redactQuery(c), 500)),
		slog.Any("requestHeaders", headers),
	}
	if c.Method() == fiber.MethodPost {
		attrs = append(attrs, slog.String("requestBody", truncateRunes(string(c.Body()), 2000)))
	}
	if ct := string(c.Response().Header.ContentType()); strings.HasPrefix(ct, "application/json") {
		attrs = append(attrs, slog.String("responseBody", truncateRunes(string(c.Response().Body()), 2000)))
	}
	return attrs
}

const redacted = "[redacted]"

// redactQuery is the query string with the value of every credential-like
// parameter replaced, whatever its case or encoding.
func redactQuery(c *fiber.Ctx) string {
	var b strings.Builder
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(string(k)))
		b.WriteByte('=')
		if credentialParams[strings.ToLower(string(k))] {
			b.WriteString(redacted)
		} else {
			b.WriteString(url.QueryEscape(string(v)))
		}
	})
	return b.String()
}

// routeLabel bounds the metric label set: registered API routes by path,
// unmatched paths as "unmatched", the widget's page routes as "widget".
func (s *Server) routeLabel(c *fiber.Ctx, status int) string {
	p := strings.TrimRight(strings.ToLower(c.Path()), "/")
	if r, ok := s.routes[p]; ok {
		return r.path // the map's own string: p may point into the request
	}
	if status == fiber.StatusNotFound || status == fiber.StatusMethodNotAllowed {
		return "unmatched"
	}
	return "widget"
}

func (s *Server) logPanic(c *fiber.Ctx, e any) {
	c.Locals(localPanicked, true)
	s.log.Error("panic in handler", "requestId", requestID(c), "method", c.Method(),
		"path", truncateRunes(c.Path(), 200), "panic", fmt.Sprint(e), "stack", string(debug.Stack()))
}

// handleError is the one error handler: every 4xx/5xx answers with
// shared.ErrorBody and X-Request-ID.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	rid := requestID(c)
	early := rid == ""
	if early {
		// fasthttp rejected the request before any middleware ran.
		rid = newRequestID()
		c.Locals(localRequestID, rid)
		c.Set(fiber.HeaderContentSecurityPolicy, s.csp)
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		c.Set(fiber.HeaderXFrameOptions, "DENY")
		c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	}
	e := s.toSharedError(c, err, rid)
	status := e.Code.Status()
	c.Set(shared.HeaderRequestID, rid)
	if status == fiber.StatusUnauthorized && c.Method() != fiber.MethodPost {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="usage"`)
	}
	c.Response().Header.Del(fiber.HeaderETag)
	c.Response().Header.Del(fiber.HeaderLastModified)
	c.Set(fiber.HeaderCacheControl, "no-store")
	jerr := c.Status(status).JSON(e.Body(rid, s.cfg.Now()))
	if early {
		s.logRequest(c, time.Now())
	}
	return jerr
}

func (s *Server) toSharedError(c *fiber.Ctx, err error, rid string) *shared.Error {
	internal := func(cause error) *shared.Error {
		s.log.Error("internal error", "requestId", rid, "method", c.Method(),
			"path", truncateRunes(c.Path(), 200), "error", cause.Error())
		return &shared.Error{Code: shared.CodeInternal,
			Message: "internal server error; the server log has the details under this request ID"}
	}
	if c.Locals(localPanicked) == true {
		return internal(fmt.Errorf("panic: %w", err))
	}
	var (
		se *shared.Error
		ve *shared.ValidationError
		fe *fiber.Error
	)
	switch {
	case errors.As(err, &se):
		if _, ok := shared.Catalogue[se.Code]; !ok || se.Code == shared.CodeInternal {
			return internal(err)
		}
		if se.Code.Status() >= 500 {
			// Storage errors keep their message (free bytes, directory
			// mode) for the operator; the cause goes to the log.
			s.log.Error("storage error", "requestId", rid, "code", string(se.Code), "error", err.Error())
		}
		return se
	case errors.As(err, &ve):
		return &shared.Error{Code: shared.CodeValidationFailed, Message: ve.Error(), Field: ve.Field()}
	case errors.As(err, &fe):
		switch fe.Code {
		case fiber.StatusNotFound:
			return &shared.Error{Code: shared.CodeNotFound,
				Message: fmt.Sprintf("no route for %s %s", c.Method(), truncateRunes(c.Path(), 200))}
		case fiber.StatusMethodNotAllowed:
			return &shared.Error{Code: shared.CodeMethodNotAllowed,
				Message: fmt.Sprintf("method %s is not allowed on %s", c.Method(), truncateRunes(c.Path(), 200))}
		case fiber.StatusRequestEntityTooLarge:
			return &shared.Error{Code: shared.CodePayloadTooLarge,
				Message: fmt.Sprintf("request body exceeds %d bytes (64 KiB)", shared.MaxBodyBytes)}
		case fiber.StatusRequestHeaderFieldsTooLarge:
			return &shared.Error{Code: shared.CodeHeadersTooLarge,
				Message: fmt.Sprintf("request headers exceed %d bytes (16 KiB)", maxHeaderBytes)}
		case fiber.StatusUnsupportedMediaType:
			return &shared.Error{Code: shared.CodeUnsupportedMediaType, Message: fe.Message}
		case fiber.StatusTooManyRequests:
			return &shared.Error{Code: shared.CodeRateLimited, Message: "too many requests"}
		case fiber.StatusUnauthorized:
			return &shared.Error{Code: shared.CodeAuthMissingKey, Message: fe.Message}
		}
		if fe.Code >= 400 && fe.Code < 500 {
			return &shared.Error{Code: shared.CodeValidationFailed, Field: "request",
				Message: "request rejected: " + strings.ToLower(http.StatusText(fe.Code))}
		}
		return internal(err)
	}
	return internal(err)
}

// constantEqual compares secrets in constant time. Hashing first makes the
// comparison independent of the lengths too.
func constantEqual(got, want string) bool {
	g := sha256.Sum256([]byte(got))
	w := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

func (s *Server) requireWriteKey(c *fiber.Ctx) error {
	return s.authorize(c, func() error {
		key := c.Get(shared.HeaderAPIKey)
		if key == "" {
			return &shared.Error{Code: shared.CodeAuthMissingKey,
				Message: "missing write key: send it in the X-API-Key header"}
		}
		if !constantEqual(key, s.keys().write) {
			return &shared.Error{Code: shared.CodeAuthInvalidKey,
				Message: "the X-API-Key header does not match the server's write key"}
		}
		return nil
	})
}

// requireReadToken guards GETs: the read token as a bearer token, or the
// write key in X-API-Key (its holder may read too). Credentials in the query
// string are rejected by the strict query parsing of each handler.
func (s *Server) requireReadToken(c *fiber.Ctx) error {
	if s.cfg.PublicRead {
		return c.Next()
	}
	return s.authorize(c, func() error {
		if key := c.Get(shared.HeaderAPIKey); key != "" {
			if constantEqual(key, s.keys().write) {
				return nil
			}
			return &shared.Error{Code: shared.CodeAuthInvalidKey,
				Message: "the X-API-Key header does not match the server's write key"}
		}
		tok, ok := bearer(c)
		if !ok {
			return &shared.Error{Code: shared.CodeAuthMissingKey,
				Message: "missing read token: send it as Authorization: Bearer <token>"}
		}
		if !constantEqual(tok, s.keys().read) {
			return &shared.Error{Code: shared.CodeAuthInvalidKey,
				Message: "the bearer token does not match the server's read token"}
		}
		return nil
	})
}

// metricsSuggestion replaces the catalogue's, which names the write key:
// /metrics takes only its own token, and a monitoring system should never
// hold the write key.
const metricsSuggestion = "Send the metrics token (--metrics-token-file on the server) as Authorization: Bearer <token>."

func (s *Server) requireMetricsToken(c *fiber.Ctx) error {
	want := s.keys().metrics
	if want == "" {
		// Open, but a token sent in the URL is refused like everywhere else.
		if err := rejectQueryCredentials(c); err != nil {
			return err
		}
		return c.Next()
	}
	return s.authorize(c, func() error {
		tok, ok := bearer(c)
		if !ok {
			return &shared.Error{Code: shared.CodeAuthMissingKey, Suggestion: metricsSuggestion,
				Message: "missing metrics token: send it as Authorization: Bearer <token>"}
		}
		if !constantEqual(tok, want) {
			return &shared.Error{Code: shared.CodeAuthInvalidKey, Suggestion: metricsSuggestion,
				Message: "the bearer token does not match the server's metrics token"}
		}
		return nil
	})
}

func bearer(c *fiber.Ctx) (string, bool) {
	h := strings.TrimSpace(c.Get(fiber.HeaderAuthorization))
	const p = "bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	tok := strings.TrimSpace(h[len(p):])
	return tok, tok != ""
}

// rateLimiter limits POSTs per write key and client IP with fiber's
// limiter (fixed one-minute window). It runs after requireWriteKey, so
// only valid keys ever get a bucket. The key is hashed so that no secret
// sits in the limiter's storage. fiber sets only Retry-After when the limit
// is reached; the X-RateLimit-* headers are added here so that a client
// sees the same headers on a 429 as on every other POST.
func (s *Server) rateLimiter() fiber.Handler {
	if s.cfg.RateLimit <= 0 {
		return nil
	}
	limit := strconv.Itoa(s.cfg.RateLimit)
	s.postLimits = newLimitStore()
	return limiter.New(limiter.Config{
		Max:        s.cfg.RateLimit,
		Expiration: time.Minute,
		Storage:    s.postLimits,
		KeyGenerator: func(c *fiber.Ctx) string {
			h := sha256.Sum256([]byte(c.Get(shared.HeaderAPIKey)))
			return hex.EncodeToString(h[:8]) + "|" + s.clientAddr(c).String()
		},
		LimitReached: func(c *fiber.Ctx) error {
			s.metrics.rateLimited.Inc()
			secs := string(c.Response().Header.Peek(fiber.HeaderRetryAfter))
			c.Set("X-RateLimit-Limit", limit)
			c.Set("X-RateLimit-Remaining", "0")
			c.Set("X-RateLimit-Reset", secs)
			return &shared.Error{Code: shared.CodeRateLimited,
				Message: fmt.Sprintf("more than %s POSTs per minute from this key and address; retry in %s s", limit, secs)}
		},
	})
}
