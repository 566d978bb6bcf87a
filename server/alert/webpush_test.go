package alert

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/claude-usage/widget/server/store"
)

const testSubject = "mailto:ops@example.com"

// pushSetup is a store with one subscription pointing at a local push
// service, and the WebPush channel with its dispatcher.
func pushSetup(t *testing.T) (*store.FileStore, *pushService, *Dispatcher, *Metrics) {
	t.Helper()
	st := openStore(t, t.TempDir())
	ctx := context.Background()
	keys, err := st.VAPIDKeys(ctx, GenerateVAPIDKeys)
	if err != nil {
		t.Fatal(err)
	}
	bk := newBrowserKeys(t)
	ps := newPushService(t, keys.Public, testSubject, bk)
	if err := st.SavePushSubscription(ctx, store.PushSubscription{Endpoint: ps.endpoint(), P256dh: bk.p256dh(), Auth: bk.authB64()}, 20); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	wp := &WebPush{Store: st, Keys: keys, Subject: testSubject, AllowPrivate: true}
	return st, ps, NewDispatcher(st, 0, nil, m, nil, wp), m
}

var sample = Alert{ID: ID("default", "session", KindThreshold, 90, r0), Kind: KindThreshold, Account: "default",
	Meter: "session", Label: "Current session", PercentUsed: 90, Threshold: 90,
	Title: "Current session at 90 %", Message: "Current session at 90 % — resets 16:00 (in 1 h 10 min)", At: base}

// TestWebPushEndToEnd: the push service verifies the VAPID JWT and
// decrypts the body with the subscription's keys; the payload is what
// go-app's service worker shows.
func TestWebPushEndToEnd(t *testing.T) {
	st, ps, d, m := pushSetup(t)
	ctx := context.Background()
	if err := d.Enqueue(ctx, sample); err != nil {
		t.Fatal(err)
	}
	if next := d.Drain(ctx, "webpush"); !next.IsZero() {
		t.Errorf("something is still due at %v", next)
	}
	if len(ps.errs) > 0 {
		t.Fatalf("the push service refused: %q", ps.errs)
	}
	want := PushPayload{Title: sample.Title, Body: sample.Message, Icon: DefaultIconPath, Path: "/", Tag: sample.ID}
	if got := ps.got; len(got) != 1 || got[0] != want {
		t.Fatalf("delivered %+v, want exactly %+v", got, want)
	}
	if got, want := count(t, m, "webpush", ResultSent), 1.0; got != want {
		t.Errorf("sent = %v, want %v", got, want)
	}
	if q, _ := st.Deliveries(ctx, "webpush"); len(q) != 0 {
		t.Errorf("queue after delivery: %+v", q)
	}
}

// TestWebPushGoneRemovesSubscription: 404/410 from the push service
// removes the subscription and the delivery, counted as dropped.
func TestWebPushGoneRemovesSubscription(t *testing.T) {
	for _, status := range []int{http.StatusGone, http.StatusNotFound} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			st, ps, d, m := pushSetup(t)
			ps.setStatus(status)
			ctx := context.Background()
			if err := d.Enqueue(ctx, sample); err != nil {
				t.Fatal(err)
			}
			d.Drain(ctx, "webpush")
			if got, want := ps.requests, 1; got != want {
				t.Errorf("%d requests, want %d (a gone subscription is not retried)", got, want)
			}
			if subs, _ := st.PushSubscriptions(ctx); len(subs) != 0 {
				t.Errorf("subscriptions after %d: %+v, want none", status, subs)
			}
			if q, _ := st.Deliveries(ctx, "webpush"); len(q) != 0 {
				t.Errorf("queue after %d: %+v", status, q)
			}
			if got := count(t, m, "webpush", ResultDropped); got != 1 {
				t.Errorf("dropped = %v, want 1", got)
			}
		})
	}
}

// TestWebPushSubscriptionChoices: a subscription that narrowed kinds or
// thresholds gets only those.
func TestWebPushSubscriptionChoices(t *testing.T) {
	th := func(crossed ...int) Alert {
		a := sample
		a.Threshold, a.Crossed = crossed[len(crossed)-1], crossed
		return a
	}
	reset := sample
	reset.Kind = KindReset
	tests := []struct {
		name string
		sub  store.PushSubscription
		a    Alert
		want bool
	}{
		{"all by default", store.PushSubscription{}, th(90), true},
		{"kind not chosen", store.PushSubscription{Kinds: []string{"reset"}}, th(90), false},
		{"kind chosen", store.PushSubscription{Kinds: []string{"reset"}}, reset, true},
		{"threshold not chosen", store.PushSubscription{Thresholds: []int{95}}, th(90), false},
		{"a lower chosen threshold crossed by the same jump", store.PushSubscription{Thresholds: []int{75}}, th(75, 90, 95), true},
		{"thresholds do not filter other kinds", store.PushSubscription{Thresholds: []int{95}}, reset, true},
		{"a test goes only where asked", store.PushSubscription{}, Alert{Kind: KindTest}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := wants(tt.sub, tt.a); got != tt.want {
				t.Errorf("wants = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPushEndpointMustBePublic: without --push-allow-private the server
// never posts to loopback, private, link-local or multicast addresses,
// nor to a name that resolves to one (checked at dial time).
func TestPushEndpointMustBePublic(t *testing.T) {
	hits := 0
	inside := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits++
		w.WriteHeader(http.StatusCreated)
	}))
	defer inside.Close()
	port := inside.URL[strings.LastIndex(inside.URL, ":")+1:]
	st := openStore(t, t.TempDir())
	ctx := context.Background()
	keys, _ := st.VAPIDKeys(ctx, GenerateVAPIDKeys)
	bk := newBrowserKeys(t)
	wp := &WebPush{Store: st, Keys: keys, Subject: testSubject}
	tests := []struct{ name, endpoint string }{
		{"http", "http://push.example.com/x"},
		{"loopback literal", inside.URL + "/x"},
		{"a name that resolves to loopback", "https://localhost:" + port + "/x"},
		{"IPv6 loopback", "https://[::1]:" + port + "/x"},
		{"cloud metadata", "https://169.254.169.254/latest"},
		{"private", "https://10.0.0.1/x"},
		{"credentials", "https://user:pw@push.example.com/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := st.SavePushSubscription(ctx, store.PushSubscription{Endpoint: tt.endpoint, P256dh: bk.p256dh(), Auth: bk.authB64()}, 20); err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			err := wp.Send(cctx, tt.endpoint, sample)
			se, ok := err.(*SendError)
			if !ok || !se.Permanent {
				t.Fatalf("Send = %v, want a permanent refusal", err)
			}
		})
	}
	if hits != 0 {
		t.Errorf("the inside server got %d requests, want 0", hits)
	}
}

func TestPublicAddr(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"8.8.8.8", true}, {"2001:4860:4860::8888", true},
		{"127.0.0.1", false}, {"::1", false}, {"10.1.2.3", false}, {"172.16.0.1", false}, {"192.168.1.1", false},
		{"169.254.169.254", false}, {"fe80::1", false}, {"224.0.0.1", false}, {"ff02::1", false},
		{"0.0.0.0", false}, {"100.64.0.1", false}, {"::ffff:127.0.0.1", false}, {"64:ff9b::a00:1", false},
		{"fd00::1", false}, {"255.255.255.255", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := PublicAddr(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("PublicAddr(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

// count reads one delivery counter.
func count(t *testing.T, m *Metrics, channel, result string) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.deliveries.WithLabelValues(channel, result).Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetCounter().GetValue()
}
