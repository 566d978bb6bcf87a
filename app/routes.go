package app

import (
	"sync"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

var routesOnce sync.Once

// RegisterRoutes registers the widget's pages with go-app. Both the WASM
// main and the server call it: go-app serves a page only for a route it
// knows. It is safe to call more than once.
func RegisterRoutes() {
	routesOnce.Do(func() {
		app.Route("/", func() app.Composer { return &Widget{} })
	})
}
