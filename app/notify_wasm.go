//go:build js && wasm

package app

import (
	"encoding/json"
	"errors"
	"strings"
	"syscall/js"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/claude-usage/widget/shared"
)

// detectPush says whether this browser can subscribe. iOS Safari has no
// PushManager outside a home-screen app, and says so nowhere else, so it
// gets its own explanation.
func detectPush() pushSupport {
	w, nav := js.Global(), js.Global().Get("navigator")
	if w.Get("Notification").Truthy() && w.Get("PushManager").Truthy() && nav.Get("serviceWorker").Truthy() {
		return pushOK
	}
	ua := nav.Get("userAgent").String()
	if strings.Contains(ua, "iPhone") || strings.Contains(ua, "iPad") ||
		(strings.Contains(ua, "Macintosh") && nav.Get("maxTouchPoints").Int() > 1) {
		return pushIOS
	}
	return pushNone
}

// await waits for a promise, bounded so that a promise that never settles
// (a service worker that never becomes ready) cannot hang the widget.
func await(p js.Value, timeout time.Duration) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	var then, catch js.Func
	then = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{v: args[0]}
		return nil
	})
	catch = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{err: errors.New(args[0].Call("toString").String())}
		return nil
	})
	p.Call("then", then).Call("catch", catch)
	defer then.Release()
	defer catch.Release()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-time.After(timeout):
		return js.Undefined(), errors.New("the browser did not answer in time")
	}
}

// requestPermission asks the browser's permission prompt; the caller runs
// it only from the user's tap on the switch.
func requestPermission() app.NotificationPermission {
	n := js.Global().Get("Notification")
	if !n.Truthy() {
		return app.NotificationNotSupported
	}
	// No timeout that means "no": the prompt waits for the user.
	v, err := await(n.Call("requestPermission"), 10*time.Minute)
	if err != nil {
		return app.NotificationDenied
	}
	return app.NotificationPermission(v.String())
}

// pushRegistration is the page's service worker registration.
func pushRegistration() (js.Value, error) {
	sw := js.Global().Get("navigator").Get("serviceWorker")
	if !sw.Truthy() {
		return js.Undefined(), errors.New("no service worker")
	}
	return await(sw.Get("ready"), 10*time.Second)
}

func currentSubscription() (app.NotificationSubscription, bool) {
	var out app.NotificationSubscription
	reg, err := pushRegistration()
	if err != nil {
		return out, false
	}
	sub, err := await(reg.Get("pushManager").Call("getSubscription"), 10*time.Second)
	if err != nil || !sub.Truthy() {
		return out, false
	}
	raw := js.Global().Get("JSON").Call("stringify", sub).String()
	return out, json.Unmarshal([]byte(raw), &out) == nil && out.Endpoint != ""
}

// unsubscribe removes the subscription from the server, then from the
// browser's push service.
func unsubscribe(token, endpoint string) error {
	if endpoint != "" {
		err := pushCall("DELETE", shared.PathPushSubscriptions, token, shared.PushSubscriptionRequest{Endpoint: endpoint}, nil)
		var se *shared.Error
		if err != nil && !(errors.As(err, &se) && se.Code == shared.CodeNotFound) {
			return err
		}
	}
	reg, err := pushRegistration()
	if err != nil {
		return nil // nothing to unsubscribe in the browser
	}
	if s, err := await(reg.Get("pushManager").Call("getSubscription"), 10*time.Second); err == nil && s.Truthy() {
		_, err = await(s.Call("unsubscribe"), 10*time.Second)
		return err
	}
	return nil
}

// pushCall sends one request to the server's push API with the read token
// (in a header, never the URL) and decodes a JSON answer into out. It uses
// fetch directly: the usage client's Doer sends no request bodies.
func pushCall(method, path, token string, body, out any) error {
	opts := js.Global().Get("Object").New()
	opts.Set("method", method)
	opts.Set("cache", "no-store")
	opts.Set("credentials", "same-origin")
	headers := js.Global().Get("Headers").New()
	headers.Call("append", "Authorization", "Bearer "+token)
	if b := encode(body); b != nil {
		headers.Call("append", "Content-Type", "application/json")
		opts.Set("body", string(b))
	}
	opts.Set("headers", headers)
	res, err := await(js.Global().Call("fetch", path, opts), 15*time.Second)
	if err != nil {
		return err
	}
	text, err := await(res.Call("text"), 15*time.Second)
	if err != nil {
		return err
	}
	raw := []byte(text.String())
	if status := res.Get("status").Int(); status >= 300 {
		if eb, ok := shared.ParseErrorBody(raw); ok {
			return &shared.Error{Code: eb.ErrorCode, Message: eb.Message}
		}
		return pushError(status)
	}
	if out != nil && len(raw) > 0 {
		return json.Unmarshal(raw, out)
	}
	return nil
}
