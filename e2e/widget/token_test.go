//go:build !js

package widget_test

import (
	"strings"
	"testing"
	"time"
)

// A token as `head -c 32 /dev/urandom | base64` makes one, '+', '/' and '='
// included, works pasted into the URL: the fragment is percent-decoded only,
// so a '+' stays a '+' (decoded as a query string it became a space and the
// widget was locked out with "Access token missing or invalid").
func TestTokenWithPlusFromTheURL(t *testing.T) {
	t.Parallel()
	const token = "e2e+read/token+0123456789=="
	s := startServer(t, "--read-token", token) // the later flag wins
	s.post(time.Minute)
	tb := newTab(t, s.url())
	tb.open("/#token=" + token)
	tb.waitMeters(3, firstLoad)
	tb.waitStatus("", 5*time.Second)
	if got := tb.eval(`localStorage.getItem("usage-widget.token") || ""`); !strings.Contains(got, token) {
		t.Errorf("stored token = %q, want %q", got, token)
	}
	if got := tb.eval(`location.hash`); got != "" {
		t.Errorf("the token stayed in the address bar: %q", got)
	}
	tb.checkClean()
}
