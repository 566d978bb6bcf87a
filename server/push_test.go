package server

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-usage/widget/server/alert"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

// withAlerts runs an alert service on the env's store (a real clock: these
// tests measure), stopped at cleanup.
func withAlerts(t *testing.T, mod func(*alert.Options)) envOption {
	return func(e *env, c *Config) {
		fs := e.st.(*store.FileStore)
		o := alert.Options{Source: fs, Store: fs, AllowPrivate: true, MaxSubscriptions: 2, Logger: e.log, Location: time.UTC}
		if mod != nil {
			mod(&o)
		}
		a, err := alert.NewService(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		a.Start(ctx)
		t.Cleanup(func() { cancel(); a.Wait() })
		c.Alerts = a
	}
}

func subscriptionBody(t *testing.T, endpoint string, extra string) string {
	t.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	return fmt.Sprintf(`{"endpoint":%q,"keys":{"p256dh":%q,"auth":%q}%s}`, endpoint,
		base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), base64.RawURLEncoding.EncodeToString(auth), extra)
}

func (e *env) push(method, path, body string) resp {
	e.t.Helper()
	return e.do(method, path, body, "Content-Type", "application/json", "Authorization", "Bearer "+testToken)
}

func TestPushSubscriptionEndpoints(t *testing.T) {
	e := newEnv(t, withAlerts(t, func(o *alert.Options) { o.AllowPrivate = false }))
	if r := e.do(http.MethodGet, shared.PathPushKey, ""); r.status != http.StatusUnauthorized {
		t.Errorf("key without the read token = %d, want 401", r.status)
	}
	var key shared.PushKeyResponse
	r := e.get(shared.PathPushKey)
	r.decode(t, &key)
	if raw, err := base64.RawURLEncoding.DecodeString(key.PublicKey); err != nil || len(raw) != 65 {
		t.Errorf("publicKey %q is not a base64url P-256 point", key.PublicKey)
	}
	if got, want := fmt.Sprint(key.Kinds, key.Thresholds), "[threshold reset pace scraper stale] [75 90 95]"; got != want {
		t.Errorf("kinds and thresholds %s, want %s", got, want)
	}

	ep := "https://push.example.com/send/abc"
	bad := []struct{ name, body, field string }{
		{"http endpoint", subscriptionBody(t, "http://push.example.com/x", ""), "endpoint"},
		{"loopback endpoint", subscriptionBody(t, "https://127.0.0.1/x", ""), "endpoint"},
		{"link-local endpoint", subscriptionBody(t, "https://[fe80::1]/x", ""), "endpoint"},
		{"no endpoint", `{"keys":{"p256dh":"x","auth":"y"}}`, "endpoint"},
		{"bad p256dh", fmt.Sprintf(`{"endpoint":%q,"keys":{"p256dh":"AAAA","auth":"AAAAAAAAAAAAAAAAAAAAAA"}}`, ep), "keys.p256dh"},
		{"unknown kind", subscriptionBody(t, ep, `,"kinds":["weather"]`), "kinds[0]"},
		{"threshold the server lacks", subscriptionBody(t, ep, `,"thresholds":[50]`), "thresholds[0]"},
		{"unknown field", subscriptionBody(t, ep, `,"color":"red"`), "body"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			eb := wantError(t, e.push(http.MethodPost, shared.PathPushSubscriptions, tt.body), http.StatusBadRequest, shared.CodeValidationFailed)
			if eb.Field != tt.field {
				t.Errorf("field %q, want %q (%s)", eb.Field, tt.field, eb.Message)
			}
		})
	}

	if r := e.push(http.MethodPost, shared.PathPushSubscriptions, subscriptionBody(t, ep, `,"kinds":["threshold"],"thresholds":[95]`)); r.status != http.StatusCreated {
		t.Fatalf("subscribe = %d %s", r.status, r.body)
	}
	if r := e.push(http.MethodPost, shared.PathPushSubscriptions, subscriptionBody(t, ep+"2", "")); r.status != http.StatusCreated {
		t.Fatalf("second subscribe = %d %s", r.status, r.body)
	}
	wantError(t, e.push(http.MethodPost, shared.PathPushSubscriptions, subscriptionBody(t, ep+"3", "")), http.StatusForbidden, shared.CodeSubscriptionLimit)

	var list shared.PushSubscriptionList
	e.get(shared.PathPushSubscriptions).decode(t, &list)
	if len(list.Subscriptions) != 2 || list.Subscriptions[0].Endpoint != ep || fmt.Sprint(list.Subscriptions[0].Thresholds) != "[95]" {
		t.Errorf("list %+v", list)
	}
	if strings.Contains(string(e.get(shared.PathPushSubscriptions).body), "p256dh") {
		t.Error("the list must not carry the subscriptions' keys")
	}
	del := fmt.Sprintf(`{"endpoint":%q}`, ep)
	if r := e.push(http.MethodDelete, shared.PathPushSubscriptions, del); r.status != http.StatusNoContent {
		t.Errorf("delete = %d %s", r.status, r.body)
	}
	wantError(t, e.push(http.MethodDelete, shared.PathPushSubscriptions, del), http.StatusNotFound, shared.CodeNotFound)
	wantError(t, e.push(http.MethodPost, shared.PathPushTest, del), http.StatusNotFound, shared.CodeNotFound)
}

// pushReceiver is a stand-in push service that records what reaches it
// (the cryptography is verified in server/alert's tests).
type pushReceiver struct {
	mu   sync.Mutex
	srv  *httptest.Server
	reqs []http.Header
	at   []time.Time
}

func newPushReceiver(t *testing.T) *pushReceiver {
	p := &pushReceiver{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		p.mu.Lock()
		p.reqs = append(p.reqs, r.Header.Clone())
		p.at = append(p.at, time.Now())
		p.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pushReceiver) wait(t *testing.T, n int) []time.Time {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		got := len(p.reqs)
		at := append([]time.Time(nil), p.at...)
		p.mu.Unlock()
		if got >= n {
			return at
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the receiver got fewer than %d requests in 5 s", n)
	return nil
}

func TestPushTestNotification(t *testing.T) {
	rc := newPushReceiver(t)
	e := newEnv(t, withAlerts(t, nil))
	ep := rc.srv.URL + "/push/1"
	if r := e.push(http.MethodPost, shared.PathPushSubscriptions, subscriptionBody(t, ep, "")); r.status != http.StatusCreated {
		t.Fatalf("subscribe = %d %s", r.status, r.body)
	}
	r := e.push(http.MethodPost, shared.PathPushTest, fmt.Sprintf(`{"endpoint":%q}`, ep))
	if r.status != http.StatusAccepted {
		t.Fatalf("test = %d %s", r.status, r.body)
	}
	rc.wait(t, 1)
	h := rc.reqs[0]
	if h.Get("Content-Encoding") != "aes128gcm" || !strings.HasPrefix(h.Get("Authorization"), "vapid t=") {
		t.Errorf("push request headers %v", h)
	}
}

// TestAlertLatencyPostToWebhook measures what README reports: from the
// POST of a snapshot that crosses a threshold to the webhook receiving it.
func TestAlertLatencyPostToWebhook(t *testing.T) {
	var mu sync.Mutex
	var got []alert.WebhookBody
	var at time.Time
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b alert.WebhookBody
		_ = json.NewDecoder(r.Body).Decode(&b)
		mu.Lock()
		got, at = append(got, b), time.Now()
		mu.Unlock()
	}))
	defer hook.Close()
	// Threshold alerts only: the reading would also fire a pace alert,
	// delivered a moment later, and this test counts what one kind sends.
	e := newEnv(t, withAlerts(t, func(o *alert.Options) { o.WebhookURL = hook.URL; o.Kinds = []alert.Kind{alert.KindThreshold} }))
	start := time.Now()
	e.mustPost(snap("default", t0, 91))
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n, when := len(got), at
		mu.Unlock()
		if n > 0 {
			lat := when.Sub(start)
			t.Logf("POST → webhook latency: %v", lat)
			if lat > time.Second {
				t.Errorf("latency %v, want under 1 s", lat)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no webhook within 5 s of the POST")
		}
		time.Sleep(2 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Kind != alert.KindThreshold || got[0].Threshold != 90 ||
		got[0].Message != "Current session at 91 % — resets 16:00 (in 2 h 10 min)" {
		t.Errorf("webhook got %+v", got)
	}
	// A replay of the same POST stores nothing and fires nothing.
	if r := e.post(snap("default", t0, 91), shared.HeaderIdempotencyKey, "k"); r.status != http.StatusCreated {
		t.Fatalf("keyed POST = %d", r.status)
	}
	if r := e.post(snap("default", t0, 91), shared.HeaderIdempotencyKey, "k"); r.status != http.StatusOK {
		t.Fatalf("replay = %d", r.status)
	}
	if v := metricValue(t, e, `usage_alerts_total{kind="threshold"}`); v != 1 {
		t.Errorf("usage_alerts_total = %v, want 1", v)
	}
}
