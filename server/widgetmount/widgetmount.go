//go:build !wasm

// Package widgetmount serves the go-app widget from the fiber server: the
// page routes through go-app's handler and app.wasm precompressed. The API
// routes stay native fiber handlers; this package only adds page routes.
package widgetmount

import (
	"time"

	"github.com/gofiber/fiber/v2"
)

// Options are the widget's settings, passed from the server's flags.
type Options struct {
	WebDir           string        // directory with app.wasm(.br/.gz), icons, CSS
	Refresh          time.Duration // --widget-refresh (60s)
	RetryDelay       time.Duration // --widget-retry-delay (2s)
	BreakerThreshold int           // --widget-breaker-threshold (3)
	BreakerCooldown  time.Duration // --widget-breaker-cooldown (60s)
	Version          string        // build version, busts the service worker cache
}

// Mount registers the widget's page and asset routes on f. Call it after
// the API routes and before the catch-all 404 handler.
func Mount(f *fiber.App, opts Options) error {
	// Filled in by the widget work (issue 4).
	_ = f
	_ = opts
	return nil
}
