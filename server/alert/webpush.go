package alert

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"

	"github.com/claude-usage/widget/server/store"
)

// PushTTL is how long a push service keeps an alert for an offline device.
const PushTTL = 12 * time.Hour

// PushPayload is what go-app's service worker shows: title, body, icon and
// the path a click opens; tag lets the browser fold a repeat of one id.
type PushPayload struct {
	Title string `json:"title"`
	Body  string `json:"body"`
	Icon  string `json:"icon"`
	Path  string `json:"path"`
	Tag   string `json:"tag,omitempty"`
}

// WebPush delivers alerts to the browsers' push services (RFC 8030) with
// aes128gcm encryption (RFC 8291) and VAPID (RFC 8292), through
// webpush-go.
type WebPush struct {
	Store   store.AlertStore
	Keys    store.VAPIDKeys
	Subject string // VAPID sub: mailto:… or https://…
	// AllowPrivate lifts the https and public-address rules (tests only).
	AllowPrivate bool
	Client       *http.Client // nil: PushClient(AllowPrivate)
	Now          func() time.Time
}

// Name implements Channel.
func (*WebPush) Name() string { return "webpush" }

// wants reports whether sub chose to hear about a.
func wants(sub store.PushSubscription, a Alert) bool {
	if a.Kind == KindTest {
		return false // a test goes to the one subscription that asked
	}
	if len(sub.Kinds) > 0 && !slices.Contains(sub.Kinds, string(a.Kind)) {
		return false
	}
	if a.Kind == KindThreshold && len(sub.Thresholds) > 0 {
		crossed := a.Crossed
		if len(crossed) == 0 {
			crossed = []int{a.Threshold}
		}
		return slices.ContainsFunc(crossed, func(t int) bool { return slices.Contains(sub.Thresholds, t) })
	}
	return true
}

// Targets implements Channel: the endpoints of the subscriptions that
// want a.
func (w *WebPush) Targets(ctx context.Context, a Alert) ([]string, error) {
	subs, err := w.Store.PushSubscriptions(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range subs {
		if wants(s, a) {
			out = append(out, s.Endpoint)
		}
	}
	return out, nil
}

// Send implements Channel. The subscription is looked up at send time: one
// removed meanwhile gets nothing. 404 and 410 remove it.
func (w *WebPush) Send(ctx context.Context, endpoint string, a Alert) error {
	subs, err := w.Store.PushSubscriptions(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(subs, func(s store.PushSubscription) bool { return s.Endpoint == endpoint })
	if i < 0 {
		return &SendError{Gone: true, Err: errors.New("the subscription was removed")}
	}
	if err := CheckEndpoint(endpoint, w.AllowPrivate); err != nil {
		return &SendError{Permanent: true, Err: err}
	}
	payload, err := json.Marshal(PushPayload{Title: a.Title, Body: a.Message, Icon: DefaultIconPath, Path: "/", Tag: a.ID})
	if err != nil {
		return &SendError{Permanent: true, Err: err}
	}
	c := w.Client
	if c == nil {
		c = PushClient(w.AllowPrivate)
	}
	resp, err := webpush.SendNotificationWithContext(ctx, payload, &webpush.Subscription{
		Endpoint: endpoint, Keys: webpush.Keys{P256dh: subs[i].P256dh, Auth: subs[i].Auth},
	}, &webpush.Options{
		HTTPClient: c,
		// webpush-go adds "mailto:" to anything not https:, so it gets the
		// bare address.
		Subscriber:      strings.TrimPrefix(w.Subject, "mailto:"),
		TTL:             int(PushTTL / time.Second),
		Urgency:         webpush.UrgencyNormal,
		VAPIDPublicKey:  w.Keys.Public,
		VAPIDPrivateKey: w.Keys.Private,
	})
	if err != nil {
		if errors.Is(err, errNotPublic) {
			return &SendError{Permanent: true, Err: err}
		}
		return err
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		_ = answer(resp, now(w.Now))
		if _, derr := w.Store.DeletePushSubscription(context.WithoutCancel(ctx), endpoint); derr != nil {
			return fmt.Errorf("removing the expired subscription: %w", derr)
		}
		return &SendError{Status: resp.StatusCode, Gone: true, Err: errors.New("the push service says the subscription expired; removed")}
	}
	return answer(resp, now(w.Now))
}

// GenerateVAPIDKeys makes a new P-256 key pair for VAPID.
func GenerateVAPIDKeys() (store.VAPIDKeys, error) {
	priv, pub, err := webpush.GenerateVAPIDKeys()
	return store.VAPIDKeys{Public: pub, Private: priv}, err
}

// CheckEndpoint refuses an endpoint the server must not post to: not an
// absolute https URL (http allowed with allowPrivate), with credentials,
// or naming an address that is not public. A host name is checked again
// when it is dialled (PushClient), since DNS can change.
func CheckEndpoint(endpoint string, allowPrivate bool) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || u.User != nil {
		return errors.New("the endpoint must be an absolute URL without credentials")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowPrivate:
	default:
		return errors.New("the endpoint must be an https URL")
	}
	if allowPrivate {
		return nil
	}
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil && !PublicAddr(ip) {
		return errNotPublic
	}
	return nil
}

// nonPublic are ranges beyond what netip's predicates cover: shared
// address space, benchmarking, reserved, NAT64 and 6to4 (which embed IPv4
// addresses, private ones included), documentation.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("fc00::/7"),
}

// PublicAddr reports whether ip is a public unicast address: not loopback,
// private, link-local (cloud metadata lives there), multicast or reserved.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() ||
		ip.IsMulticast() || ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// publicOnly runs on the address actually being connected to, after DNS,
// so a name that resolves (or re-resolves) to an inside address fails.
func publicOnly(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !PublicAddr(ap.Addr()) {
		return fmt.Errorf("%w (%s)", errNotPublic, address)
	}
	return nil
}

// PushClient is the client for push services: no proxy, no redirects, and
// without allowPrivate a dialer that connects to public addresses only.
func PushClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if !allowPrivate {
		d.Control = publicOnly
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// CheckKeys validates a subscription's keys: p256dh an uncompressed P-256
// point, auth 16 bytes, both base64url (padding optional).
func CheckKeys(p256dh, auth string) (field string, err error) {
	pk, err := decodeB64(p256dh)
	if err != nil {
		return "keys.p256dh", errors.New("keys.p256dh must be base64url")
	}
	if _, err := ecdh.P256().NewPublicKey(pk); err != nil || len(pk) != 65 {
		return "keys.p256dh", errors.New("keys.p256dh must be an uncompressed P-256 public key (65 bytes)")
	}
	a, err := decodeB64(auth)
	if err != nil || len(a) != 16 {
		return "keys.auth", errors.New("keys.auth must be 16 bytes, base64url")
	}
	return "", nil
}

func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}
