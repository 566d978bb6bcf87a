package app

import (
	htmlpkg "html"
	"slices"
	"strings"
	"testing"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/claude-usage/widget/shared"
)

func TestNotificationsExplainsWhenPushIsUnavailable(t *testing.T) {
	tests := []struct {
		name       string
		support    pushSupport
		permission app.NotificationPermission
		want       string // text shown; "" when the switch is shown instead
	}{
		{"iPhone outside the home-screen app", pushIOS, app.NotificationNotSupported, TextPushIOS},
		{"no push at all", pushNone, app.NotificationNotSupported, TextPushUnsupported},
		{"blocked by the user", pushOK, app.NotificationDenied, TextPushDenied},
		{"available", pushOK, app.NotificationDefault, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &Notifications{support: tt.support, permission: tt.permission}
			html := app.HTMLString(n)
			hasSwitch := strings.Contains(html, `id="push-toggle"`)
			if tt.want == "" {
				if !hasSwitch {
					t.Errorf("no switch in %s", html)
				}
				return
			}
			if hasSwitch || !strings.Contains(html, htmlpkg.EscapeString(tt.want)) {
				t.Errorf("want only the text %q, got %s", tt.want, html)
			}
		})
	}
}

func TestNotificationsChoices(t *testing.T) {
	n := &Notifications{support: pushOK, on: true, sub: &app.NotificationSubscription{Endpoint: "https://p/1"},
		server: shared.PushKeyResponse{Kinds: []string{"threshold", "reset"}, Thresholds: []int{75, 90, 95}}}
	html := app.HTMLString(n)
	for _, id := range []string{"push-kind-threshold", "push-kind-reset", "push-threshold-90", "push-test"} {
		if !strings.Contains(html, `id="`+id+`"`) {
			t.Errorf("%s missing from %s", id, html)
		}
	}
	if !strings.Contains(html, "Send test notification") || !strings.Contains(html, `aria-checked`) ||
		!strings.Contains(html, "Notifications on") {
		t.Errorf("the switch must say on and offer the test: %s", html)
	}
}

func TestFlipChoices(t *testing.T) {
	all := []int{75, 90, 95}
	tests := []struct {
		name   string
		chosen []int
		v      int
		want   []int
	}{
		{"unticking one of all", nil, 90, []int{75, 95}},
		{"ticking the last one back is all again", []int{75, 95}, 90, nil},
		{"unticking another", []int{75, 95}, 75, []int{95}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := flip(tt.chosen, tt.v, all); !slices.Equal(got, tt.want) {
				t.Errorf("flip = %v, want %v", got, tt.want)
			}
		})
	}
}
