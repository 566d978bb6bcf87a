// Command bareapp is the baseline of usage-bench's widget section: the
// smallest go-app v10 program that shows what the widget's user waits for,
// one meter (li.meter, the selector the e2e tests wait on), with static
// content and no data fetch. usage-bench builds it exactly like `make wasm`
// builds the widget, so the difference in time to first meter is the
// widget's own cost.
package main

import "github.com/maxence-charriere/go-app/v10/pkg/app"

// page renders one meter. The ul only keeps the li valid HTML.
type page struct{ app.Compo }

func (*page) Render() app.UI {
	return app.Ul().Class("meter-list").Body(
		app.Li().Class("meter").Text("Current session: 42% used"),
	)
}

func main() {
	app.Route("/", func() app.Composer { return &page{} })
	// Returns at once on the host; in the browser it runs the UI loop.
	app.RunWhenOnBrowser()
}
