//go:build !(js && wasm)

package app

import (
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	Settings Settings
	// Version names the build; it must change when app.wasm changes so
	// that the service worker replaces its cache.
	Version string
}

// Theme colours, also in web/widget.css.
const (
	ThemeColor      = "#1f6f5c"
	BackgroundColor = "#f7f7f5"
)

// NewHandler returns the go-app handler for the widget. Everything it
// references is local: go-app's default icon lives on another host, which
// would fail offline and break the "no other host" rule.
func NewHandler(o HandlerOptions) *app.Handler {
	RegisterRoutes()
	h := &app.Handler{
		Name:            "Claude usage widget",
		ShortName:       "Claude usage",
		Title:           "Claude usage",
		Description:     "How much of your Claude plan limits you have used, and when they reset.",
		Lang:            "en",
		BackgroundColor: BackgroundColor,
		ThemeColor:      ThemeColor,
		// No percentage: the server hands app.wasm to the browser's
		// compiler directly (widgetmount.StreamWasmNatively).
		LoadingLabel: "Loading the widget…",
		Icon: app.Icon{
			Default:  "/web/icon-192.png",
			Large:    "/web/icon-512.png",
			SVG:      "/web/icon.svg",
			Maskable: "/web/icon-maskable.png",
		},
		Styles: []string{"/web/widget.css"},
		// Starts the first data request while app.wasm loads (see the
		// file); async, so it never holds the page up.
		Scripts: []string{"/web/prefetch.js async"},
		// wasm-compile.js compiles app.wasm off the main thread (see
		// server/widgetmount); offline, it must come from the cache too.
		CacheableResources: []string{"/web/icon.svg", "/web/icon-maskable.png", "/web/wasm-compile.js"},
		Env:                o.Settings.Env(),
		Version:            o.Version,
		// Resources resolves /web/... to the same path on this server; the
		// server serves /web/ itself (app.wasm precompressed), so go-app
		// does not need to be a file server.
		Resources: localWeb{},
	}
	return h
}

// localWeb resolves resources to paths on the serving host, like
// app.LocalDir(""), without serving files itself.
type localWeb struct{}

func (localWeb) Resolve(location string) string {
	if location == "" || location == "/" {
		return "/"
	}
	if strings.HasPrefix(location, "http://") || strings.HasPrefix(location, "https://") {
		return location
	}
	if location == "/web" || location == "web" || strings.HasPrefix(location, "/web/") || strings.HasPrefix(location, "web/") {
		return "/" + strings.Trim(location, "/")
	}
	return location
}
