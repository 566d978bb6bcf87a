package storemigrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/claude-usage/widget/server/store"
)

var errNoPair = errors.New("no VAPID pair in the file store")

// alertChannels are the delivery queues the alert service keeps.
var alertChannels = []string{"webpush", "ntfy", "webhook"}

// copyAlerts copies the alert engine's state document, the VAPID key pair
// (so that browsers' push subscriptions keep working), the subscriptions
// and the queued deliveries. What the database has already is kept: a
// second run changes nothing. Claimed alert ids are not listed by the file
// store and are not copied; the state document carries what the engine
// needs to not fire again.
func copyAlerts(ctx context.Context, src, dst store.AlertStore, out io.Writer) error {
	if raw, err := dst.AlertState(ctx); err != nil {
		return err
	} else if raw == nil {
		state, err := src.AlertState(ctx)
		if err != nil {
			return err
		}
		if state != nil {
			if err := dst.SaveAlertState(ctx, state); err != nil {
				return err
			}
		}
	}
	// Asking the file store for its pair generates one when it has none;
	// a generator that fails leaves the source as it was, and the
	// database keeps (or later generates) its own.
	k, err := src.VAPIDKeys(ctx, func() (store.VAPIDKeys, error) { return store.VAPIDKeys{}, errNoPair })
	if err != nil && !errors.Is(err, errNoPair) && !strings.Contains(err.Error(), errNoPair.Error()) {
		return err
	}
	if err == nil && k.Public != "" {
		got, err := dst.VAPIDKeys(ctx, func() (store.VAPIDKeys, error) { return k, nil })
		if err != nil {
			return err
		}
		if got != k {
			fmt.Fprintln(out, "VAPID keys: the database has its own pair; kept (browsers subscribed to the file store's must subscribe again)")
		}
	}
	subs, err := src.PushSubscriptions(ctx)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if err := dst.SavePushSubscription(ctx, sub, math.MaxInt32); err != nil {
			return err
		}
	}
	queued := 0
	for _, ch := range alertChannels {
		ds, err := src.Deliveries(ctx, ch)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if _, err := dst.EnqueueDelivery(ctx, d, 0); err != nil {
				return err
			}
			queued++
		}
	}
	fmt.Fprintf(out, "alerts: state, %d push subscriptions and %d queued deliveries copied\n", len(subs), queued)
	return nil
}
