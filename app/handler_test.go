//go:build !(js && wasm)

package app

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHandlerServesLocalPWA(t *testing.T) {
	t.Parallel()
	h := NewHandler(HandlerOptions{
		Settings: Settings{Refresh: 2 * time.Second, RetryDelay: 300 * time.Millisecond, BreakerThreshold: 3, BreakerCooldown: 5 * time.Second},
		Version:  "test-1",
	})
	get := func(path string) (int, string, http.Header) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		b, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(b), rec.Result().Header
	}

	code, page, _ := get("/")
	if code != http.StatusOK {
		t.Fatalf("GET / = %d", code)
	}
	for _, want := range []string{"<title>Claude usage</title>", `href="/web/widget.css"`, `href="/manifest.webmanifest"`, "Loading..."} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	_, js, _ := get("/app.js")
	for _, want := range []string{`"WIDGET_REFRESH":"2s"`, `"WIDGET_RETRY_DELAY":"300ms"`, `"WIDGET_BREAKER_COOLDOWN":"5s"`} {
		if !strings.Contains(js, want) {
			t.Errorf("app.js lacks %q", want)
		}
	}

	code, body, hdr := get("/manifest.webmanifest")
	if code != http.StatusOK || hdr.Get("Content-Type") != "application/manifest+json" {
		t.Fatalf("manifest = %d %s", code, hdr.Get("Content-Type"))
	}
	var m struct {
		Name, ShortName, Display, StartURL string
		Icons                              []struct{ Src, Sizes, Purpose string }
	}
	if err := json.Unmarshal([]byte(strings.NewReplacer(`"short_name"`, `"ShortName"`, `"start_url"`, `"StartURL"`).Replace(body)), &m); err != nil {
		t.Fatal(err)
	}
	if m.Name == "" || m.ShortName == "" || m.Display != "standalone" || m.StartURL != "/" {
		t.Errorf("manifest = %+v", m)
	}
	sizes := map[string]bool{}
	for _, ic := range m.Icons {
		if !strings.HasPrefix(ic.Src, "/web/") {
			t.Errorf("icon %q is not local", ic.Src)
		}
		sizes[ic.Sizes+ic.Purpose] = true
	}
	for _, want := range []string{"192x192", "512x512", "512x512maskable", "any"} {
		if !sizes[want] {
			t.Errorf("manifest lacks icon %s: %+v", want, m.Icons)
		}
	}

	// Nothing the handler emits points at another host.
	for _, p := range []string{"/", "/app.js", "/app-worker.js", "/manifest.webmanifest"} {
		_, b, _ := get(p)
		for _, bad := range []string{"https://raw.githubusercontent", "http://", "githubusercontent"} {
			if strings.Contains(b, bad) {
				t.Errorf("%s mentions %q", p, bad)
			}
		}
	}
	_, worker, _ := get("/app-worker.js")
	for _, want := range []string{`"/web/app.wasm"`, `"/web/icon-192.png"`, `"/web/widget.css"`, `"/"`, `app-" + "test-1"`} {
		if !strings.Contains(worker, want) {
			t.Errorf("service worker does not cache %s", want)
		}
	}
}
