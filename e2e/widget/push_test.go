//go:build !js

package widget_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/chromedp"
)

// pushSubscriptions is the server's list of push subscriptions.
func (s *server) pushSubscriptions(t *testing.T) []string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url()+"/api/push/subscriptions", nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Subscriptions []struct{ Endpoint string } `json:"subscriptions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET subscriptions = %d, %v", resp.StatusCode, err)
	}
	var out []string
	for _, s := range list.Subscriptions {
		out = append(out, s.Endpoint)
	}
	return out
}

// fakePushService stands in for the browser vendor's push service, which
// headless Chromium cannot reach (background networking is off and test
// traffic stays on 127.0.0.1: pushManager.subscribe never settles). The
// page's PushManager.subscribe/getSubscription are replaced before the
// widget loads so that they hand out a subscription to a local endpoint
// with a real P-256 key pair; everything else is the browser's and the
// widget's own: the permission, the widget's subscribe call with the
// server's VAPID key, the server's delivery, the service worker's push
// handler and notifications.
const fakePushService = `(() => {
  const ENDPOINT = %q;
  const b64 = buf => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  let current = null;
  PushManager.prototype.subscribe = async function (opts) {
    if (!opts || opts.userVisibleOnly !== true || !opts.applicationServerKey) throw new DOMException("bad options", "NotAllowedError");
    if (Notification.permission !== "granted") throw new DOMException("permission", "NotAllowedError");
    const k = opts.applicationServerKey;
    window.__applicationServerKey = typeof k === "string" ? k : b64(k);
    const kp = await crypto.subtle.generateKey({name: "ECDH", namedCurve: "P-256"}, true, ["deriveBits"]);
    const json = {endpoint: ENDPOINT, expirationTime: null, keys: {
      p256dh: b64(await crypto.subtle.exportKey("raw", kp.publicKey)), auth: b64(crypto.getRandomValues(new Uint8Array(16)))}};
    current = {endpoint: ENDPOINT, toJSON: () => json, unsubscribe: async () => { current = null; return true; }};
    return current;
  };
  PushManager.prototype.getSubscription = async function () { return current; };
})();`

// pushService counts what the server posts to the endpoint.
type pushService struct {
	mu    sync.Mutex
	posts []http.Header
}

func (p *pushService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	p.mu.Lock()
	p.posts = append(p.posts, r.Header.Clone())
	p.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

func (p *pushService) count() int { p.mu.Lock(); defer p.mu.Unlock(); return len(p.posts) }

// evalAwait evaluates js, waiting for the promise it returns.
func (tb *tab) evalAwait(js string) string {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// TestPushNotifications: the permission is granted through CDP (as a tap on
// the browser's prompt would); a tap on the switch subscribes with the
// server's VAPID key and the server lists the subscription; Send test
// notification reaches the push endpoint; a push delivered to the page's
// service worker through CDP shows its title and body.
func TestPushNotifications(t *testing.T) {
	t.Parallel()
	ps := &pushService{}
	push := httptest.NewServer(ps)
	defer push.Close()
	endpoint := push.URL + "/push/e2e-device"

	s := startServer(t, "--push-allow-private")
	s.post(time.Minute)
	tb := newTab(t, s.url())
	if _, err := chromedp.Call(tb.ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: fmt.Sprintf(fakePushService, endpoint)}); err != nil {
		t.Fatal(err)
	}

	// The registration id of the page's service worker, for deliverPushMessage.
	var mu sync.Mutex
	var regID serviceworker.RegistrationID
	if err := chromedp.Listen(tb.ctx, func(ev any) {
		if ev, ok := ev.(*serviceworker.EventWorkerRegistrationUpdated); ok {
			mu.Lock()
			defer mu.Unlock()
			for _, r := range ev.Registrations {
				if !r.IsDeleted && strings.HasPrefix(r.ScopeURL, s.url()) {
					regID = r.RegistrationID
				}
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(tb.ctx, serviceworker.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	tb.open("/#token=" + readToken)
	tb.waitMeters(3, firstLoad)
	if got := tb.eval(`Notification.permission`); got != "default" {
		t.Fatalf("Notification.permission = %q before anyone asked; the widget must not ask on load", got)
	}
	for _, name := range []string{"notifications", "push"} {
		if _, err := chromedp.CallBrowser(tb.ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: name, UserVisibleOnly: true},
			Setting:    cdpbrowser.PermissionSettingGranted, Origin: s.url(),
		}); err != nil {
			t.Fatalf("granting %s: %v", name, err)
		}
	}

	tb.do(chromedp.Click(chromedp.ID("settings-toggle")))
	tb.waitFor("the switch", `document.getElementById("push-toggle") ? "yes" : ""`, 10*time.Second,
		func(s string) bool { return s == "yes" })
	tb.do(chromedp.Click(chromedp.ID("push-toggle")))
	msg := tb.waitFor("subscribed", `(document.getElementById("push-msg") || {}).textContent || ""`, 20*time.Second,
		func(s string) bool { return s != "" })
	tb.shot("push-subscribed")
	if msg != "Notifications are on for this device." {
		t.Fatalf("after the tap the widget says %q", msg)
	}
	if subs := s.pushSubscriptions(t); len(subs) != 1 || subs[0] != endpoint {
		t.Fatalf("the server lists %v, want [%s]", subs, endpoint)
	}
	if got, want := tb.eval(`window.__applicationServerKey || ""`), s.vapidKey(t); got != want {
		t.Errorf("the widget subscribed with key %q, want the server's %q", got, want)
	}

	tb.do(chromedp.Click(chromedp.ID("push-test")))
	tb.waitFor("test sent", `(document.getElementById("push-msg") || {}).textContent || ""`, 10*time.Second,
		func(s string) bool { return strings.HasPrefix(s, "Test notification sent") })
	deadline := time.Now().Add(10 * time.Second)
	for ps.count() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the test notification did not reach the push endpoint")
		}
		time.Sleep(25 * time.Millisecond)
	}
	if h := ps.posts[0]; h.Get("Content-Encoding") != "aes128gcm" || !strings.HasPrefix(h.Get("Authorization"), "vapid t=") {
		t.Errorf("the push request's headers: %v", h)
	}

	// What the server sends (alert.PushPayload), delivered by CDP.
	payload := `{"title":"Current session at 90 %","body":"Current session at 90 % — resets 16:00 (in 1 h 10 min)","icon":"/web/icon-192.png","path":"/","tag":"abc"}`
	for {
		mu.Lock()
		id := regID
		mu.Unlock()
		if id != "" {
			if _, err := chromedp.Call(tb.ctx, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{
				Origin: s.url(), RegistrationID: id, Data: payload}); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no service worker registration reported")
		}
		time.Sleep(25 * time.Millisecond)
	}
	const notificationsJS = `navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns => JSON.stringify(ns.map(n => [n.title, n.body, n.data.goapp.path])))`
	shown := "[]"
	for deadline = time.Now().Add(10 * time.Second); shown == "[]" && time.Now().Before(deadline); {
		if shown = tb.evalAwait(notificationsJS); shown == "[]" {
			time.Sleep(25 * time.Millisecond)
		}
	}
	if want := `[["Current session at 90 %","Current session at 90 % — resets 16:00 (in 1 h 10 min)","/"]]`; shown != want {
		t.Errorf("notifications %s, want %s", shown, want)
	}

	// Off again: the server forgets the subscription.
	tb.do(chromedp.Click(chromedp.ID("push-toggle")))
	tb.waitFor("unsubscribed", `document.getElementById("push-toggle").textContent`, 10*time.Second,
		func(s string) bool { return s == "Notifications off" })
	if subs := s.pushSubscriptions(t); len(subs) != 0 {
		t.Errorf("after turning off the server lists %v", subs)
	}
}

func (s *server) vapidKey(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url()+"/api/push/vapid-public-key", nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var k struct{ PublicKey string }
	if err := json.NewDecoder(resp.Body).Decode(&k); err != nil {
		t.Fatal(err)
	}
	return k.PublicKey
}
