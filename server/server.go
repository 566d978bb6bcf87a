// Package server is the fiber backend of the usage widget: the snapshot API,
// scraper status, health, metrics and the widget's page routes. New builds
// the app around any store.Store; Run is the whole command.
package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/helmet"
	recoverer "github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"

	"github.com/claude-usage/widget/server/alert"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/widgetmount"
	"github.com/claude-usage/widget/shared"
)

// contentSecurityPolicy lets the go-app PWA run and nothing else: scripts
// from this origin and the hashes of the page's own inline scripts (no
// 'unsafe-inline', so an injected script cannot read the token in
// localStorage), WebAssembly compilation, same-origin fetches, manifest
// and service worker.
func contentSecurityPolicy(scriptHashes []string) string {
	script := strings.Join(append([]string{"'self'", "'wasm-unsafe-eval'"}, scriptHashes...), " ")
	return "default-src 'self'; script-src " + script + "; " +
		"style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; manifest-src 'self'; " +
		"worker-src 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
}

// maxHeaderBytes is the request header buffer: large cookies on a shared
// domain are normal, and fasthttp's 4 KiB default refused them.
const maxHeaderBytes = 16 << 10

// Config configures New. Zero durations take the defaults in parentheses.
type Config struct {
	APIKey       string // write key, required
	ReadToken    string // read token; required unless PublicRead
	PublicRead   bool
	MetricsToken string // empty: /metrics is open

	RateLimit      int // POSTs per minute per key+IP; 0 disables
	TrustedProxies []string

	// AuthFailures is how many failed authentications one client address
	// may make per AuthWindow before every request of it that needs a key
	// is 429 until the window ends (10 per 1m).
	AuthFailures int
	AuthWindow   time.Duration

	// MaxAccounts bounds the accounts a write key can create (20).
	MaxAccounts int

	// MaxStreams bounds the open live-update streams (100); StreamPing is
	// how often an idle stream sends a comment (shared.StreamPing).
	MaxStreams int
	StreamPing time.Duration

	// LogDropped reports the bytes of log output lost to write errors
	// (logbuf.Writer.Dropped), exposed as a counter; nil: not exposed.
	LogDropped func() int64

	Now     func() time.Time // injected clock for staleness and validation
	Verbose bool             // SYNC_VERBOSE: request/response detail, stacks

	ReadTimeout  time.Duration // (10s)
	WriteTimeout time.Duration // (15s)
	IdleTimeout  time.Duration // (60s)
	SaveTimeout  time.Duration // bound of one store save, queueing included (10s)

	// Widget, when set, mounts the go-app widget after the API routes.
	Widget *widgetmount.Options

	// Alerts, when set, serves the Web Push endpoints (push.go) and its
	// metrics; the caller runs and stops it.
	Alerts *alert.Service
}

func (c *Config) defaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ReadTimeout, 10*time.Second)
	def(&c.WriteTimeout, 15*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	def(&c.SaveTimeout, 10*time.Second)
	def(&c.AuthWindow, time.Minute)
	if c.AuthFailures <= 0 {
		c.AuthFailures = 10
	}
	if c.MaxAccounts <= 0 {
		c.MaxAccounts = 20
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 100
	}
	def(&c.StreamPing, shared.StreamPing)
}

// Server is the HTTP layer around a store.
type Server struct {
	cfg     Config
	st      store.Store
	log     *slog.Logger
	app     *fiber.App
	metrics *metrics
	// usageCache holds encoded GET usage answers (usagecache.go).
	usageCache usageCache

	csp       string
	proxies   []netip.Prefix
	authLimit *authLimiter
	// postLimits is the POST limiter's storage (nil without --rate-limit).
	postLimits *limitStore
	// routes maps each API path to its methods (405 with Allow) and to the
	// path as the map owns it (the metric label must not be the request's
	// string, which fasthttp reuses).
	routes map[string]*apiRoute

	// hub carries stored snapshots to the open streams (stream.go); the
	// store feeds it until Close.
	hub         *hub
	unsubscribe func()

	// keyset holds the keys in force; SIGHUP swaps it (reload.go).
	keyset atomic.Pointer[keySet]
}

// New builds the fiber app around st. st stays owned by the caller.
func New(cfg Config, st store.Store, logger *slog.Logger) (*Server, error) {
	if st == nil {
		return nil, errors.New("server: store is nil")
	}
	if cfg.APIKey == "" {
		return nil, errors.New("server: no write key configured")
	}
	if cfg.ReadToken == "" && !cfg.PublicRead {
		return nil, errors.New("server: no read token configured and public read not enabled")
	}
	if err := checkKeys(cfg.APIKey, cfg.ReadToken); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.defaults()
	s := &Server{
		cfg:    cfg,
		st:     st,
		log:    logger.With("component", "server"),
		routes: map[string]*apiRoute{},
	}
	s.keyset.Store(&keySet{write: cfg.APIKey, read: cfg.ReadToken, metrics: cfg.MetricsToken})
	var err error
	if s.proxies, err = parseProxies(cfg.TrustedProxies); err != nil {
		return nil, err
	}
	s.authLimit = newAuthLimiter(cfg.AuthFailures, cfg.AuthWindow, cfg.Now)
	var widget *widgetmount.Widget
	if cfg.Widget != nil {
		wopts := *cfg.Widget
		if wopts.Logger == nil {
			wopts.Logger = logger // widgetmount names its own component
		}
		if widget, err = widgetmount.New(wopts); err != nil {
			return nil, fmt.Errorf("server: the widget: %w", err)
		}
		s.csp = contentSecurityPolicy(widget.InlineScriptHashes())
	} else {
		s.csp = contentSecurityPolicy(nil)
	}
	s.metrics = newMetrics(s)
	s.hub = newHub(cfg.MaxStreams)
	s.unsubscribe = st.Subscribe(s.hub.publish)

	fcfg := fiber.Config{
		AppName:               "usage-server",
		BodyLimit:             shared.MaxBodyBytes,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		ErrorHandler:          s.handleError,
		DisableStartupMessage: true,
		ReadBufferSize:        maxHeaderBytes,
		// fiber's default (Immutable false): values from *fiber.Ctx point
		// into fasthttp's reused buffers, and copying every one of them
		// cost a sixth of a GET's allocations. What outlives a request is
		// copied where it is kept: the idempotency key (usage.go), metric
		// labels (canonicalMethod, routeLabel) and the limiter's key.
		// TestNothingKeepsRequestBuffers checks it.
	}
	// The client address is taken by clientAddr (authlimit.go), not by
	// fiber's ProxyHeader, which trusts the leftmost X-Forwarded-For.
	s.app = fiber.New(fcfg)
	s.guardRequests()
	s.middleware()
	s.register()
	if widget != nil {
		widget.Mount(s.app)
	}

	return s, nil
}

// App is the fiber app, for Listen and for app.Test in tests.
func (s *Server) App() *fiber.App { return s.app }

// Close ends the open streams and stops listening to the store; it never
// closes the store.
func (s *Server) Close() error {
	s.unsubscribe()
	s.hub.close()
	return nil
}

func (s *Server) middleware() {
	s.app.Use(sanitizeRequestID)
	s.app.Use(requestid.New(requestid.Config{
		Header:     shared.HeaderRequestID,
		Generator:  newRequestID,
		ContextKey: localRequestID,
	}))
	s.app.Use(s.accessLog)
	s.app.Use(recoverer.New(recoverer.Config{
		EnableStackTrace:  true,
		StackTraceHandler: s.logPanic,
	}))
	s.app.Use(helmet.New(helmet.Config{
		XFrameOptions:         "DENY",
		ReferrerPolicy:        "no-referrer",
		ContentSecurityPolicy: s.csp,
		PermissionPolicy:      "camera=(), microphone=(), geolocation=()",
		HSTSMaxAge:            31536000,
	}))
	s.app.Use(rejectConflictingLength)
}

// handle registers a route and remembers its path for 405 answers.
// apiRoute is one registered API path.
type apiRoute struct {
	path    string
	methods []string
}

func (s *Server) handle(method, path string, hs ...fiber.Handler) {
	var handlers []fiber.Handler
	for _, h := range hs {
		if h != nil {
			handlers = append(handlers, h)
		}
	}
	r := s.routes[path]
	if r == nil {
		r = &apiRoute{path: path}
		s.routes[path] = r
	}
	r.methods = append(r.methods, method)
	if method == fiber.MethodGet {
		// app.Get registers HEAD too (fasthttp drops the body).
		s.app.Get(path, handlers...)
		r.methods = append(r.methods, fiber.MethodHead)
		return
	}
	s.app.Add(method, path, handlers...)
}

func (s *Server) register() {
	// The POST limit counts valid keys only: a wrong key is the failed-auth
	// limiter's (authlimit.go) and never gets a bucket here.
	postLimit := s.rateLimiter()
	s.handle(fiber.MethodPost, shared.PathUsage, s.requireWriteKey, postLimit, s.postUsage)
	s.handle(fiber.MethodGet, shared.PathUsage, s.requireReadToken, s.getUsage)
	s.handle(fiber.MethodGet, shared.PathHistory, s.requireReadToken, s.history)
	s.handle(fiber.MethodGet, shared.PathWindows, s.requireReadToken, s.getWindows)
	s.handle(fiber.MethodGet, shared.PathStream, s.requireReadToken, s.getStream)
	s.handle(fiber.MethodPost, shared.PathScraperStatus, s.requireWriteKey, postLimit, s.postScraperStatus)
	s.handle(fiber.MethodGet, shared.PathHealth, s.getHealth)
	s.handle(fiber.MethodGet, shared.PathMetrics, s.requireMetricsToken, s.metrics.handler())
	s.registerPush()
	// API paths never fall through to the widget's page routes: an unknown
	// API path is a 404 with the error body, a known one with the wrong
	// method a 405.
	s.app.Use(s.apiFallback)
}

func (s *Server) apiFallback(c *fiber.Ctx) error {
	p := strings.TrimRight(strings.ToLower(c.Path()), "/")
	if p != "/api" && !strings.HasPrefix(p, "/api/") && p != shared.PathMetrics {
		return c.Next()
	}
	if r, ok := s.routes[p]; ok {
		methods := r.methods
		c.Set(fiber.HeaderAllow, strings.Join(methods, ", "))
		return &shared.Error{Code: shared.CodeMethodNotAllowed,
			Message: fmt.Sprintf("method %s is not allowed on %s; allowed: %s", c.Method(), p, strings.Join(methods, ", "))}
	}
	return notFound(c)
}

func notFound(c *fiber.Ctx) error {
	return &shared.Error{Code: shared.CodeNotFound,
		Message: fmt.Sprintf("no route for %s %s", c.Method(), truncateRunes(c.Path(), 200))}
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
