package server

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/claude-usage/widget/shared"
)

// metrics is the server's own Prometheus registry (not the global one, so
// that several servers in one test binary do not collide).
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	writeDuration prometheus.Histogram
	writeFailures *prometheus.CounterVec
	replays       prometheus.Counter
	rateLimited   prometheus.Counter
	authFailures  prometheus.Counter
	authLimited   prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usage_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "usage_http_request_duration_seconds", Help: "HTTP request latency by route and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
		writeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "usage_store_write_duration_seconds", Help: "Duration of store saves, failed ones included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		writeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usage_store_write_failures_total", Help: "Failed store saves by error code.",
		}, []string{"code"}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usage_idempotent_replays_total", Help: "POSTs answered from an earlier result by Idempotency-Key.",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usage_rate_limited_total", Help: "POSTs rejected by the rate limit.",
		}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usage_auth_failures_total", Help: "Requests refused for a missing or wrong key or token.",
		}),
		authLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "usage_auth_limited_total", Help: "Requests refused (429) because their address failed authentication too often.",
		}),
	}
	if s.cfg.LogDropped != nil {
		// Bytes, not lines: a failed write loses whatever was buffered.
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "usage_log_dropped_bytes_total", Help: "Bytes of log output lost to failed writes on stderr.",
		}, func() float64 { return float64(s.cfg.LogDropped()) }))
	}
	m.reg.MustRegister(m.requests, m.latency, m.writeDuration, m.writeFailures, m.replays, m.rateLimited, m.authFailures, m.authLimited,
		&stateCollector{s: s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeRequest(route, method string, status int, d time.Duration) {
	method = canonicalMethod(method)
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

// observeWrite records a store save. Only the store's own failures count
// (a 5xx code); a client's mistake such as IDEMPOTENCY_KEY_REUSED does not.
// The label is a code of the closed set, never an error's text.
func (m *metrics) observeWrite(d time.Duration, err error) {
	m.writeDuration.Observe(d.Seconds())
	if err == nil {
		return
	}
	code := shared.CodeInternal
	var se *shared.Error
	if errors.As(err, &se) {
		if _, known := shared.Catalogue[se.Code]; known {
			code = se.Code
		}
	}
	if code.Status() < 500 {
		return
	}
	m.writeFailures.WithLabelValues(string(code)).Inc()
}

func (m *metrics) handler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
}

// stateCollector reports the store's state at scrape time, read like
// health reads it (storeStatus: memory, and a bounded write check).
type stateCollector struct{ s *Server }

var (
	descVersions = prometheus.NewDesc("usage_versions", "Stored versions per account.", []string{"account"}, nil)
	descAge      = prometheus.NewDesc("usage_last_snapshot_age_seconds",
		"Age of the latest snapshot per account (from scrapedAt, by the server's clock).", []string{"account"}, nil)
	descBreaker = prometheus.NewDesc("usage_store_breaker_state",
		"Store circuit breaker state: 0 closed, 1 open, 2 half-open.", nil, nil)
	descWritable = prometheus.NewDesc("usage_storage_writable", "1 when the last storage check could write.", nil, nil)
	descFree     = prometheus.NewDesc("usage_storage_free_bytes", "Free bytes in the data directory.", nil, nil)
	descCorrupt  = prometheus.NewDesc("usage_store_corrupt_files", "Files quarantined as corrupt.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descVersions, descAge, descBreaker, descWritable, descFree, descCorrupt} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.storeStatus(context.Background())
	now := c.s.cfg.Now()
	// At most --max-accounts series each: accounts a store held before
	// the limit (or grew past it on disk) must not grow /metrics.
	accounts := st.Accounts
	if len(accounts) > c.s.cfg.MaxAccounts {
		accounts = accounts[:c.s.cfg.MaxAccounts]
	}
	for _, a := range accounts {
		ch <- prometheus.MustNewConstMetric(descVersions, prometheus.GaugeValue, float64(a.Count), a.Account)
		ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, max(now.Sub(a.Latest), 0).Seconds(), a.Account)
	}
	w := 0.0
	if st.Writable {
		w = 1
	}
	ch <- prometheus.MustNewConstMetric(descBreaker, prometheus.GaugeValue, float64(st.Breaker))
	ch <- prometheus.MustNewConstMetric(descWritable, prometheus.GaugeValue, w)
	ch <- prometheus.MustNewConstMetric(descFree, prometheus.GaugeValue, float64(st.FreeBytes))
	ch <- prometheus.MustNewConstMetric(descCorrupt, prometheus.GaugeValue, float64(st.CorruptFiles))
}

// canonicalMethod maps a request's method to a constant string: a label
// is kept by the registry, and the request's own string points into a
// buffer fasthttp reuses. It also bounds the label set.
func canonicalMethod(m string) string {
	switch m {
	case fiber.MethodGet:
		return fiber.MethodGet
	case fiber.MethodHead:
		return fiber.MethodHead
	case fiber.MethodPost:
		return fiber.MethodPost
	case fiber.MethodPut:
		return fiber.MethodPut
	case fiber.MethodPatch:
		return fiber.MethodPatch
	case fiber.MethodDelete:
		return fiber.MethodDelete
	case fiber.MethodOptions:
		return fiber.MethodOptions
	}
	return "other"
}
