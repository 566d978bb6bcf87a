package shared

import "time"

// API paths.
const (
	PathUsage         = "/api/claude/console-usage"
	PathHistory       = "/api/claude/console-usage/history"
	PathScraperStatus = "/api/claude/scraper-status"
	PathHealth        = "/api/health"
	PathMetrics       = "/metrics"
)

// Headers.
const (
	HeaderAPIKey             = "X-API-Key"
	HeaderRequestID          = "X-Request-ID"
	HeaderIdempotencyKey     = "Idempotency-Key"
	HeaderIdempotentReplayed = "Idempotent-Replayed"
)

// Staleness thresholds: data is stale from 10 min, unhealthy after 30 min.
const (
	StaleAfter     = 10 * time.Minute
	UnhealthyAfter = 30 * time.Minute
)

// PostResult is the body of a successful POST.
type PostResult struct {
	Success   bool      `json:"success"`
	Version   int       `json:"version"`
	ID        string    `json:"id"`
	StoredAt  time.Time `json:"storedAt"`
	RequestID string    `json:"requestId"`
}

// VersionInfo places a snapshot in its account's history.
type VersionInfo struct {
	Current  int       `json:"current"`
	Total    int       `json:"total"`
	ID       string    `json:"id"`
	StoredAt time.Time `json:"storedAt"`
}

// UsageResponse is the body of GET /api/claude/console-usage.
type UsageResponse struct {
	Snapshot
	IsStale         bool           `json:"isStale"`
	AgeSeconds      int64          `json:"ageSeconds"`
	VersionInfo     VersionInfo    `json:"versionInfo"`
	TimeDiffSeconds *int64         `json:"timeDiffSeconds,omitempty"`
	Accounts        []string       `json:"accounts,omitempty"`
	Scraper         *ScraperStatus `json:"scraper,omitempty"`
}

// HistoryPoint is one version reduced to its meters' percentages.
type HistoryPoint struct {
	StoredAt  time.Time          `json:"storedAt"`
	ScrapedAt time.Time          `json:"scrapedAt"`
	Meters    map[string]float64 `json:"meters"`
}

// HistoryResponse is the body of GET /api/claude/console-usage/history.
type HistoryResponse struct {
	Account string         `json:"account"`
	Points  []HistoryPoint `json:"points"`
}

// ScraperStatus is the body of POST /api/claude/scraper-status and the
// `scraper` field of GET responses and health.
type ScraperStatus struct {
	Account  string      `json:"account"`
	At       time.Time   `json:"at"`
	OK       bool        `json:"ok"`
	Category ScrapeClass `json:"category,omitempty"`
	Message  string      `json:"message,omitempty"`
}

// HealthStorage is the storage part of the health body. FreeBytes, Dir and
// Error are detail: only a request with the read or metrics token gets them.
type HealthStorage struct {
	Status       string  `json:"status"`
	Writable     bool    `json:"writable"`
	FreeBytes    *uint64 `json:"freeBytes,omitempty"`
	Dir          string  `json:"dir,omitempty"`
	CorruptFiles int     `json:"corruptFiles"`
	Breaker      string  `json:"breaker"`
	Error        string  `json:"error,omitempty"`
	// Database is set when the store is a database (PostgreSQL).
	Database *HealthDatabase `json:"database,omitempty"`
}

// HealthDatabase is the database part of the storage health: whether the
// last write check reached it, how long that took, and whether its schema
// is the one this server expects.
type HealthDatabase struct {
	Reachable         bool    `json:"reachable"`
	LatencyMs         float64 `json:"latencyMs"`
	SchemaVersion     int     `json:"schemaVersion"`
	SchemaWanted      int     `json:"schemaWanted"`
	MigrationsCurrent bool    `json:"migrationsCurrent"`
}

// HealthScraper is the scraper part of the health body; LastError's message
// is detail like the storage's.
type HealthScraper struct {
	LastSeen  *time.Time     `json:"lastSeen"`
	LastError *ScraperStatus `json:"lastError"`
}

// Health statuses.
const (
	HealthHealthy   = "healthy"
	HealthDegraded  = "degraded"
	HealthUnhealthy = "unhealthy"
)

// HealthResponse is the body of GET /api/health.
type HealthResponse struct {
	Status        string        `json:"status"`
	Reasons       []string      `json:"reasons,omitempty"`
	Storage       HealthStorage `json:"storage"`
	LatestDataAge *int64        `json:"latestDataAge"`
	VersionCount  int           `json:"versionCount"`
	Scraper       HealthScraper `json:"scraper"`
	Timestamp     time.Time     `json:"timestamp"`
}

// HealthStatusFor returns the health status for data of the given age.
func HealthStatusFor(age time.Duration) string {
	switch {
	case age > UnhealthyAfter:
		return HealthUnhealthy
	case age >= StaleAfter:
		return HealthDegraded
	}
	return HealthHealthy
}
