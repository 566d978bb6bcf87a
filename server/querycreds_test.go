package server

import (
	"net/http"
	"testing"

	"github.com/claude-usage/widget/shared"
)

// A key or token in the query string is a 400 INVALID_QUERY on every API
// route, the ones that need no credentials included: the URL ends up in
// proxy logs and browser history whether or not the route reads it.
func TestQueryCredentialsRefusedEverywhere(t *testing.T) {
	t.Parallel()
	open := newEnv(t)
	public := newEnv(t, withConfig(func(c *Config) { c.PublicRead = true }))
	guarded := newEnv(t, withConfig(func(c *Config) { c.MetricsToken = "metrics-token-0123456789" }))
	tests := []struct {
		name   string
		e      *env
		method string
		target string
	}{
		{"health", open, http.MethodGet, shared.PathHealth + "?token=" + testToken},
		{"health HEAD", open, http.MethodHead, shared.PathHealth + "?access_token=x"},
		{"open metrics", open, http.MethodGet, shared.PathMetrics + "?token=x"},
		{"guarded metrics", guarded, http.MethodGet, shared.PathMetrics + "?token=metrics-token-0123456789"},
		{"usage", open, http.MethodGet, shared.PathUsage + "?token=" + testToken},
		{"usage with public read", public, http.MethodGet, shared.PathUsage + "?api_key=" + testKey},
		{"history", open, http.MethodGet, shared.PathHistory + "?read_token=x"},
		{"POST usage", open, http.MethodPost, shared.PathUsage + "?apikey=" + testKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.e.do(tt.method, tt.target, "")
			if tt.method == http.MethodHead {
				if got, want := r.status, http.StatusBadRequest; got != want {
					t.Errorf("status = %d, want %d", got, want)
				}
				return
			}
			wantError(t, r, http.StatusBadRequest, shared.CodeInvalidQuery)
		})
	}
	// Other query parameters on health stay harmless (a monitor's cache buster).
	if r := open.do(http.MethodGet, shared.PathHealth+"?t=1", ""); r.status == http.StatusBadRequest {
		t.Errorf("health?t=1 = %d, want it answered", r.status)
	}
}
