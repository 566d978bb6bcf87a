package storemigrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/store/pgstore"
)

var errNoPair = errors.New("no VAPID pair in the file store")

// copyAlerts copies the alert engine's state: the ids of alerts already
// sent (so that an alert the state document does not record, its write
// having failed after the claim, is not sent again), the VAPID key pair
// (so that browsers' push subscriptions keep working), the subscriptions,
// every channel's queued deliveries and, last, the state document. The
// document is the mark of a finished copy: a database that has one was
// copied into before, or a server has run on it, and then only the key
// pair is copied, since copying again would bring back deliveries sent
// and subscriptions removed since. An interrupted copy has no document
// yet and is done again (what is there already is kept). ok is false when
// what was copied does not read back the same.
func copyAlerts(ctx context.Context, src *store.FileStore, dst *pgstore.Store, out io.Writer) (ok bool, err error) {
	if err := copyVAPID(ctx, src, dst, out); err != nil {
		return false, err
	}
	have, err := dst.AlertState(ctx)
	if err != nil {
		return false, err
	}
	copying := have == nil
	a, err := readAlerts(ctx, src.AlertClaims, src, nil)
	if err != nil {
		return false, err
	}
	if copying {
		if _, err := dst.ImportAlertClaims(ctx, a.claims); err != nil {
			return false, err
		}
		// Only subscriptions the database lacks: one it has came from an
		// earlier, interrupted copy.
		got, err := dst.PushSubscriptions(ctx)
		if err != nil {
			return false, err
		}
		for _, sub := range a.subs {
			if !hasEndpoint(got, sub.Endpoint) {
				if err := dst.SavePushSubscription(ctx, sub, math.MaxInt32); err != nil {
					return false, err
				}
			}
		}
		for _, ch := range a.channels {
			for _, d := range a.queues[ch] {
				if _, err := dst.EnqueueDelivery(ctx, d, 0); err != nil {
					return false, err
				}
			}
		}
		// The file store's document, or an empty one, to mark the copy done.
		state := a.state
		if state == nil {
			state = []byte(`{}`)
		}
		if err := dst.SaveAlertState(ctx, state); err != nil {
			return false, err
		}
	}
	b, err := readAlerts(ctx, dst.AlertClaims, dst, a.channels)
	if err != nil {
		return false, err
	}
	ok = true
	report := func(what string, n int, want, got digest) {
		status := "verified"
		switch {
		case want.matches(got):
		case copying:
			status, ok = "MISMATCH", false
		default:
			status = "the database's own kept (copied before, or a server ran on it)"
		}
		fmt.Fprintf(out, "alerts: %s: %d in the file store; file sha256 %s, database sha256 %s over %d: %s\n",
			what, n, want.short(), got.short(), got.Count, status)
	}
	ids := map[string]bool{}
	for _, c := range a.claims {
		ids[c.ID] = true
	}
	report("sent alert ids", len(a.claims), claimsDigest(a.claims, nil), claimsDigest(b.claims, ids))
	eps := map[string]bool{}
	for _, s := range a.subs {
		eps[s.Endpoint] = true
	}
	report("push subscriptions", len(a.subs), subsDigest(a.subs, nil), subsDigest(b.subs, eps))
	for _, ch := range a.channels {
		keys := map[string]bool{}
		for _, d := range a.queues[ch] {
			keys[d.Key] = true
		}
		report("queued "+ch+" deliveries", len(a.queues[ch]), queueDigest(a.queues[ch], nil), queueDigest(b.queues[ch], keys))
	}
	if a.state != nil {
		report("state document", 1, bytesDigest(a.state), bytesDigest(b.state))
	}
	if !copying {
		fmt.Fprintln(out, "alerts: the database had an alert state already: nothing of it copied again")
	}
	return ok, nil
}

// alertData is one store's alert state as the copy compares it.
type alertData struct {
	state    []byte
	claims   []store.AlertClaim
	subs     []store.PushSubscription
	channels []string
	queues   map[string][]store.Delivery
}

type channelLister interface {
	DeliveryChannels() ([]string, error)
}

// readAlerts reads one store's alert state; channels nil lists the file
// store's queues.
func readAlerts(ctx context.Context, claims func(context.Context) ([]store.AlertClaim, error), s store.AlertStore, channels []string) (alertData, error) {
	var d alertData
	var err error
	if d.state, err = s.AlertState(ctx); err != nil {
		return d, err
	}
	if d.claims, err = claims(ctx); err != nil {
		return d, err
	}
	if d.subs, err = s.PushSubscriptions(ctx); err != nil {
		return d, err
	}
	d.channels = channels
	if l, ok := s.(channelLister); ok && channels == nil {
		if d.channels, err = l.DeliveryChannels(); err != nil {
			return d, err
		}
	}
	d.queues = map[string][]store.Delivery{}
	for _, ch := range d.channels {
		if d.queues[ch], err = s.Deliveries(ctx, ch); err != nil {
			return d, err
		}
	}
	return d, nil
}

func hasEndpoint(subs []store.PushSubscription, endpoint string) bool {
	for _, s := range subs {
		if s.Endpoint == endpoint {
			return true
		}
	}
	return false
}

// copyVAPID copies the key pair unless the database has its own. Asking
// the file store for its pair generates one when it has none; a
// generator that fails leaves the source as it was, and the database
// keeps (or later generates) its own.
func copyVAPID(ctx context.Context, src, dst store.AlertStore, out io.Writer) error {
	k, err := src.VAPIDKeys(ctx, func() (store.VAPIDKeys, error) { return store.VAPIDKeys{}, errNoPair })
	if err != nil && !errors.Is(err, errNoPair) && !strings.Contains(err.Error(), errNoPair.Error()) {
		return err
	}
	if err != nil || k.Public == "" {
		return nil
	}
	got, err := dst.VAPIDKeys(ctx, func() (store.VAPIDKeys, error) { return k, nil })
	if err != nil {
		return err
	}
	if got != k {
		fmt.Fprintln(out, "VAPID keys: the database has its own pair; kept (browsers subscribed to the file store's must subscribe again)")
	}
	return nil
}

// The digests below are over the file store's items and the database's
// items of the same keys (keep nil: all), oldest first, in a canonical
// form: times to the microsecond the database keeps, JSON re-encoded.

func claimsDigest(cs []store.AlertClaim, keep map[string]bool) digest {
	var lines []string
	for _, c := range cs {
		if keep == nil || keep[c.ID] {
			lines = append(lines, c.ID+" "+c.At.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano))
		}
	}
	return sortedDigest(lines) // claims of one time come in either order
}

func subsDigest(subs []store.PushSubscription, keep map[string]bool) digest {
	var lines []string
	for _, s := range subs {
		if keep == nil || keep[s.Endpoint] {
			lines = append(lines, canonical(s))
		}
	}
	return linesDigest(lines)
}

func queueDigest(q []store.Delivery, keep map[string]bool) digest {
	var lines []string
	for _, d := range q {
		if keep == nil || keep[d.Key] {
			lines = append(lines, canonical(d))
		}
	}
	return linesDigest(lines)
}
