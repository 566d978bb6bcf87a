package app

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/claude-usage/widget/shared"
)

// Texts of the Notifications settings. Permission is asked only when the
// user taps the switch, never on load.
const (
	TextPushUnsupported = "This browser cannot receive push notifications."
	TextPushIOS         = "On iPhone and iPad, notifications work only in the app added to the Home Screen: tap Share, then “Add to Home Screen”, and open the widget from there."
	TextPushDenied      = "Notifications are blocked for this site. Allow them in the browser's site settings, then turn them on again."
	TextPushNoToken     = "Save the read token first: the server needs it to know this device."
	TextPushOn          = "Notifications are on for this device."
	TextPushOff         = "Get told when a limit is nearly used up, has reset, or the scraper needs you."
	TextPushTestSent    = "Test notification sent; it should appear within a few seconds."
	TextPushFailed      = "Notifications could not be turned on: "
)

// pushSupport is what the browser can do.
type pushSupport int

const (
	pushUnknown pushSupport = iota // not checked yet (server render)
	pushOK
	pushNone // no service worker, PushManager or Notification
	pushIOS  // iOS Safari outside a home-screen app
)

// kindLabel is an alert kind as the settings name it.
func kindLabel(k string) string {
	switch k {
	case "threshold":
		return "Limit thresholds"
	case "reset":
		return "A limit has reset"
	case "pace":
		return "Running out before the reset"
	case "scraper":
		return "The scraper needs attention"
	case "stale":
		return "No new data"
	}
	return k
}

// Notifications is the Notifications part of the settings. The widget
// passes its read token; everything else is the component's own state.
type Notifications struct {
	app.Compo
	Token string

	support    pushSupport
	permission app.NotificationPermission
	on         bool
	busy       bool
	sub        *app.NotificationSubscription
	server     shared.PushKeyResponse
	kinds      []string // chosen; empty: all the server's
	thresholds []int
	msg        string
	msgIsError bool
}

// OnMount checks what the browser supports and whether this device is
// subscribed already; it never asks for permission.
func (n *Notifications) OnMount(ctx app.Context) {
	n.support = detectPush()
	n.permission = ctx.Notifications().Permission()
	if n.support != pushOK {
		return
	}
	token := n.Token
	var sub app.NotificationSubscription
	var key shared.PushKeyResponse
	var info *shared.PushSubscriptionInfo
	n.run(ctx, func() error {
		if token == "" {
			return errDenied
		}
		// On only when the server still holds this device's subscription
		// (it removes one its push service called expired); its choices
		// come from there too.
		var list shared.PushSubscriptionList
		ok := false
		if sub, ok = currentSubscription(); ok && pushCall("GET", shared.PathPushSubscriptions, token, nil, &list) == nil {
			for i := range list.Subscriptions {
				if list.Subscriptions[i].Endpoint == sub.Endpoint {
					info = &list.Subscriptions[i]
				}
			}
		}
		return pushCall("GET", shared.PathPushKey, token, nil, &key)
	}, func(err error) {
		if err == nil {
			n.server = key
		}
		if info != nil {
			n.sub, n.on = &sub, true
			n.kinds, n.thresholds = info.Kinds, info.Thresholds
		}
	})
}

func (n *Notifications) setMsg(s string, isErr bool) { n.msg, n.msgIsError = s, isErr }

// toggle runs on the switch's tap: the only place that asks for
// permission.
func (n *Notifications) toggle(ctx app.Context) {
	if n.busy {
		return
	}
	if n.Token == "" {
		n.setMsg(TextPushNoToken, true)
		return
	}
	n.busy = true
	token, on, req := n.Token, n.on, n.request()
	var key shared.PushKeyResponse
	var sub app.NotificationSubscription
	perm := n.permission
	n.run(ctx, func() error {
		if on {
			return unsubscribe(token, req.Endpoint)
		}
		if perm = requestPermission(); perm != app.NotificationGranted {
			return errDenied
		}
		err := pushCall("GET", shared.PathPushKey, token, nil, &key)
		if err == nil {
			sub, err = ctx.Notifications().Subscribe(key.PublicKey)
		}
		if err == nil {
			req.Endpoint, req.Keys = sub.Endpoint, shared.PushKeys{P256dh: sub.Keys.P256dh, Auth: sub.Keys.Auth}
			err = pushCall("POST", shared.PathPushSubscriptions, token, req, nil)
		}
		return err
	}, func(err error) {
		n.busy, n.permission = false, perm
		switch {
		case err == errDenied:
			n.setMsg(TextPushDenied, true)
		case err != nil && on:
			n.setMsg("Notifications could not be turned off: "+err.Error(), true)
		case err != nil:
			n.setMsg(TextPushFailed+err.Error(), true)
		case on:
			n.on, n.sub = false, nil
			n.setMsg("", false)
		default:
			n.server, n.sub, n.on = key, &sub, true
			n.setMsg(TextPushOn, false)
		}
	})
}

var errDenied = errors.New("notifications are not allowed")

// run does work off the UI goroutine and done back on it.
func (n *Notifications) run(ctx app.Context, work func() error, done func(error)) {
	ctx.Async(func() {
		err := work()
		ctx.Dispatch(func(app.Context) { done(err) })
	})
}

// request is the subscription body with the user's choices.
func (n *Notifications) request() shared.PushSubscriptionRequest {
	req := shared.PushSubscriptionRequest{Kinds: slices.Clone(n.kinds), Thresholds: slices.Clone(n.thresholds)}
	if n.sub != nil {
		req.Endpoint = n.sub.Endpoint
		req.Keys = shared.PushKeys{P256dh: n.sub.Keys.P256dh, Auth: n.sub.Keys.Auth}
	}
	return req
}

// choose toggles one kind or threshold and, when subscribed, tells the
// server (the same endpoint replaces the subscription).
func (n *Notifications) choose(ctx app.Context, kind string, threshold int) {
	if kind != "" {
		n.kinds = flip(n.kinds, kind, n.server.Kinds)
	} else {
		n.thresholds = flip(n.thresholds, threshold, n.server.Thresholds)
	}
	if !n.on || n.sub == nil {
		return
	}
	token, req := n.Token, n.request()
	n.run(ctx, func() error { return pushCall("POST", shared.PathPushSubscriptions, token, req, nil) }, func(err error) {
		if err != nil {
			n.setMsg("Your choice could not be saved: "+err.Error(), true)
		}
	})
}

// flip turns v on or off in chosen, where an empty chosen means all of
// all; a choice of everything is stored as empty again.
func flip[T comparable](chosen []T, v T, all []T) []T {
	if len(chosen) == 0 {
		chosen = slices.Clone(all)
	}
	if i := slices.Index(chosen, v); i >= 0 {
		chosen = slices.Delete(chosen, i, i+1)
	} else {
		chosen = append(chosen, v)
	}
	if len(chosen) == len(all) {
		return nil
	}
	return chosen
}

func chosen[T comparable](list []T, v T) bool { return len(list) == 0 || slices.Contains(list, v) }

func (n *Notifications) sendTest(ctx app.Context) {
	if n.sub == nil {
		return
	}
	token, body := n.Token, shared.PushSubscriptionRequest{Endpoint: n.sub.Endpoint}
	n.run(ctx, func() error { return pushCall("POST", shared.PathPushTest, token, body, nil) }, func(err error) {
		if err != nil {
			n.setMsg("The test notification could not be sent: "+err.Error(), true)
			return
		}
		n.setMsg(TextPushTestSent, false)
	})
}

// Render lays out the switch, the choices and the test button, or says
// plainly why push is not available here.
func (n *Notifications) Render() app.UI {
	explain := ""
	switch {
	case n.support == pushIOS:
		explain = TextPushIOS
	case n.support == pushNone:
		explain = TextPushUnsupported
	case n.permission == app.NotificationDenied && !n.on:
		explain = TextPushDenied
	}
	// Plain conditions rather than app.If: each closure costs app.wasm
	// bytes its budget does not have.
	var body, choices, msg app.UI
	if explain != "" {
		body = app.P().ID("push-explain").Class("note").Text(explain)
	} else {
		label := "Notifications off"
		if n.on {
			label = "Notifications on"
			choices = n.renderChoices()
		}
		body = app.Div().Body(
			app.Button().ID("push-toggle").Class("btn switch").Type("button").Role("switch").
				Aria("checked", n.on).Disabled(n.busy || n.support != pushOK).
				OnClick(func(ctx app.Context, e app.Event) { n.toggle(ctx) }).
				Text(label),
			app.P().Class("hint").Text(TextPushOff),
			choices,
		)
	}
	if n.msg != "" {
		cls := "note"
		if n.msgIsError {
			cls += " note-problem"
		}
		msg = app.P().ID("push-msg").Class(cls).Role("status").Text(n.msg)
	}
	return app.Div().ID("notifications").Class("notifications").Body(
		app.P().Class("section-title").Text("Notifications"), body, msg)
}

// choice is one checkbox: a kind, or (kind empty) a threshold.
type choice struct {
	id, label, kind string
	threshold       int
	on              bool
}

func (n *Notifications) choices() []choice {
	var out []choice
	for _, k := range n.server.Kinds {
		out = append(out, choice{id: "push-kind-" + k, label: kindLabel(k), kind: k, on: chosen(n.kinds, k)})
	}
	for _, t := range n.server.Thresholds {
		ts := strconv.Itoa(t)
		out = append(out, choice{id: "push-threshold-" + ts, label: "at " + ts + " %", threshold: t, on: chosen(n.thresholds, t)})
	}
	return out
}

func (n *Notifications) renderChoices() app.UI {
	cs := n.choices()
	return app.Div().ID("push-choices").Role("group").Aria("label", "Tell me about").Body(
		app.P().Class("hint").Text("Tell me about"),
		app.Range(cs).Slice(func(i int) app.UI {
			c := cs[i]
			return app.Label().Body(
				app.Input().Type("checkbox").ID(c.id).Checked(c.on).
					OnChange(func(ctx app.Context, e app.Event) { n.choose(ctx, c.kind, c.threshold) }),
				app.Text(" "+c.label),
			)
		}),
		app.Button().ID("push-test").Class("btn").Type("button").
			OnClick(func(ctx app.Context, e app.Event) { n.sendTest(ctx) }).
			Text("Send test notification"),
	)
}

// pushError is a server answer without the error body.
func pushError(status int) error {
	return errors.New("the server answered " + strconv.Itoa(status))
}

func encode(v any) []byte {
	if v == nil {
		return nil
	}
	b, _ := json.Marshal(v)
	return b
}
