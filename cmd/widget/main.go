// Command widget is the WASM side of the usage widget
// (GOOS=js GOARCH=wasm, built into web/app.wasm by `make wasm`).
package main

import (
	"github.com/maxence-charriere/go-app/v10/pkg/app"

	widget "github.com/claude-usage/widget/app"
	"github.com/claude-usage/widget/cmd/widget/internal/inityield"
	_ "github.com/claude-usage/widget/cmd/widget/internal/inityield/second" // see the package
)

func main() {
	// The inits after unicode's ran in this task; go-app's start and the
	// first render get one of their own.
	inityield.Yield()
	widget.RegisterRoutes()
	// Returns at once on the host; in the browser it runs the UI loop.
	app.RunWhenOnBrowser()
}
