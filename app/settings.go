// Package app is the go-app widget: its components, the routes that both the
// WASM main and the server register, the local cache and, on the host, the
// go-app handler. It never imports server/ or scraper/.
package app

import (
	"strconv"
	"time"

	"github.com/claude-usage/widget/app/client"
	"github.com/claude-usage/widget/shared"
)

// Env keys through which the server passes the widget's timings to the
// WASM side (go-app's Handler.Env, read with app.Getenv). They avoid the
// server's own USAGE_* variables because go-app also sets them in the
// server process.
const (
	EnvRefresh          = "WIDGET_REFRESH"
	EnvRetryDelay       = "WIDGET_RETRY_DELAY"
	EnvBreakerThreshold = "WIDGET_BREAKER_THRESHOLD"
	EnvBreakerCooldown  = "WIDGET_BREAKER_COOLDOWN"
)

// DefaultRefresh is the auto-refresh interval, the default of the server's
// --widget-refresh.
const DefaultRefresh = 60 * time.Second

// Settings are the widget's timings.
type Settings struct {
	Refresh          time.Duration
	RetryDelay       time.Duration
	BreakerThreshold int
	BreakerCooldown  time.Duration
}

// DefaultSettings are the defaults of the server's --widget-* flags
// (README, "Configuration").
func DefaultSettings() Settings {
	return Settings{
		Refresh:          DefaultRefresh,
		RetryDelay:       client.DefaultRetryDelay,
		BreakerThreshold: shared.DefaultBreakerThreshold,
		BreakerCooldown:  shared.DefaultBreakerCooldown,
	}
}

// Env renders the settings for Handler.Env.
func (s Settings) Env() map[string]string {
	s = s.withDefaults()
	return map[string]string{
		EnvRefresh:          s.Refresh.String(),
		EnvRetryDelay:       s.RetryDelay.String(),
		EnvBreakerThreshold: strconv.Itoa(s.BreakerThreshold),
		EnvBreakerCooldown:  s.BreakerCooldown.String(),
	}
}

// ParseSettings reads the settings through getenv (app.Getenv in the
// browser). A missing or malformed value keeps its default: the widget
// must start even when the page was served by an older server.
func ParseSettings(getenv func(string) string) Settings {
	s := DefaultSettings()
	dur := func(key string, p *time.Duration) {
		if d, err := time.ParseDuration(getenv(key)); err == nil && d > 0 {
			*p = d
		}
	}
	dur(EnvRefresh, &s.Refresh)
	dur(EnvRetryDelay, &s.RetryDelay)
	dur(EnvBreakerCooldown, &s.BreakerCooldown)
	if n, err := strconv.Atoi(getenv(EnvBreakerThreshold)); err == nil && n > 0 {
		s.BreakerThreshold = n
	}
	return s
}

func (s Settings) withDefaults() Settings {
	d := DefaultSettings()
	if s.Refresh <= 0 {
		s.Refresh = d.Refresh
	}
	if s.RetryDelay <= 0 {
		s.RetryDelay = d.RetryDelay
	}
	if s.BreakerThreshold <= 0 {
		s.BreakerThreshold = d.BreakerThreshold
	}
	if s.BreakerCooldown <= 0 {
		s.BreakerCooldown = d.BreakerCooldown
	}
	return s
}
