package storetest

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

func alertStore(t *testing.T, s store.Store) store.AlertStore {
	t.Helper()
	a, ok := s.(store.AlertStore)
	if !ok {
		t.Fatalf("%T is not a store.AlertStore", s)
	}
	return a
}

// testAlertStateSurvivesReopen: every piece of alert state is read back by
// a new store on the same location.
func testAlertStateSurvivesReopen(t *testing.T, b Backend) {
	loc := b.New(t)
	ctx := context.Background()
	s := open(t, b, loc, Options{})
	a := alertStore(t, s)
	if raw, err := a.AlertState(ctx); err != nil || raw != nil {
		t.Fatalf("state of a new store = %q, %v; want nil", raw, err)
	}
	if err := a.SaveAlertState(ctx, []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if first, err := a.ClaimAlert(ctx, "abc", T0); err != nil || !first {
		t.Fatalf("first claim = %v, %v; want true", first, err)
	}
	sub := store.PushSubscription{Endpoint: "https://push.example/1", P256dh: "k", Auth: "a", CreatedAt: T0}
	if err := a.SavePushSubscription(ctx, sub, 2); err != nil {
		t.Fatal(err)
	}
	gens := 0
	gen := func() (store.VAPIDKeys, error) { gens++; return store.VAPIDKeys{Public: "pub", Private: "priv"}, nil }
	if _, err := a.VAPIDKeys(ctx, gen); err != nil {
		t.Fatal(err)
	}
	if _, err := a.EnqueueDelivery(ctx, store.Delivery{Key: "k1", Channel: "webhook", Payload: json.RawMessage(`{}`)}, 10); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	a2 := alertStore(t, open(t, b, loc, Options{}))
	if raw, err := a2.AlertState(ctx); err != nil || string(raw) != `{"v":1}` {
		t.Errorf("state = %q, %v", raw, err)
	}
	if first, err := a2.ClaimAlert(ctx, "abc", T0); err != nil || first {
		t.Errorf("claim after reopen = %v, %v; want false (already sent)", first, err)
	}
	if err := a2.ReleaseAlert(ctx, "abc"); err != nil {
		t.Fatal(err)
	}
	if first, _ := a2.ClaimAlert(ctx, "abc", T0); !first {
		t.Error("a released claim must be claimable again")
	}
	subs, err := a2.PushSubscriptions(ctx)
	if err != nil || len(subs) != 1 || subs[0].Endpoint != sub.Endpoint || !subs[0].CreatedAt.Equal(T0) {
		t.Errorf("subscriptions = %+v, %v", subs, err)
	}
	k, err := a2.VAPIDKeys(ctx, gen)
	if err != nil || k.Public != "pub" || k.Private != "priv" || gens != 1 {
		t.Errorf("keys = %+v, %v, generated %d times; want the stored pair, generated once", k, err, gens)
	}
	q, err := a2.Deliveries(ctx, "webhook")
	if err != nil || len(q) != 1 || q[0].Key != "k1" {
		t.Errorf("queue = %+v, %v", q, err)
	}
}

func testPushSubscriptionLimitAndReplace(t *testing.T, b Backend) {
	ctx := context.Background()
	s, _ := fresh(t, b)
	a := alertStore(t, s)
	for i, ep := range []string{"https://a.example/1", "https://a.example/2"} {
		if err := a.SavePushSubscription(ctx, store.PushSubscription{Endpoint: ep, CreatedAt: T0}, 2); err != nil {
			t.Fatalf("sub %d: %v", i, err)
		}
	}
	err := a.SavePushSubscription(ctx, store.PushSubscription{Endpoint: "https://a.example/3"}, 2)
	if got, want := CodeOf(err), shared.CodeSubscriptionLimit; got != want {
		t.Errorf("third subscription: code %s, want %s", got, want)
	}
	if err := a.SavePushSubscription(ctx, store.PushSubscription{Endpoint: "https://a.example/1", Kinds: []string{"reset"}}, 2); err != nil {
		t.Fatalf("replace at the limit: %v", err)
	}
	subs, _ := a.PushSubscriptions(ctx)
	if got, want := len(subs), 2; got != want {
		t.Fatalf("%d subscriptions, want %d", got, want)
	}
	if subs[0].Endpoint != "https://a.example/1" || !subs[0].CreatedAt.Equal(T0) || len(subs[0].Kinds) != 1 {
		t.Errorf("replaced subscription = %+v, want the new kinds with the original CreatedAt, first", subs[0])
	}
	if ok, err := a.DeletePushSubscription(ctx, "https://a.example/1"); !ok || err != nil {
		t.Errorf("delete = %v, %v", ok, err)
	}
	if ok, _ := a.DeletePushSubscription(ctx, "https://a.example/1"); ok {
		t.Error("deleting twice reported a deletion")
	}
}

func testDeliveryQueue(t *testing.T, b Backend) {
	ctx := context.Background()
	s, _ := fresh(t, b)
	a := alertStore(t, s)
	var dropped []store.Delivery
	for _, k := range []string{"a", "b", "c", "c"} {
		d, err := a.EnqueueDelivery(ctx, store.Delivery{Key: k, Channel: "ntfy", Payload: json.RawMessage(`{}`)}, 2)
		if err != nil {
			t.Fatal(err)
		}
		dropped = append(dropped, d...)
	}
	if len(dropped) != 1 || dropped[0].Key != "a" {
		t.Fatalf("dropped %+v, want only the oldest (a)", dropped)
	}
	q, _ := a.Deliveries(ctx, "ntfy")
	if len(q) != 2 || q[0].Key != "b" || q[1].Key != "c" {
		t.Fatalf("queue %+v, want b, c (a duplicate key is not added)", q)
	}
	q[0].Attempts = 3
	if err := a.UpdateDelivery(ctx, q[0]); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveDelivery(ctx, "ntfy", "c"); err != nil {
		t.Fatal(err)
	}
	q, _ = a.Deliveries(ctx, "ntfy")
	if len(q) != 1 || q[0].Attempts != 3 {
		t.Errorf("queue %+v, want b with 3 attempts", q)
	}
	if _, err := a.EnqueueDelivery(ctx, store.Delivery{Key: "x", Channel: "../etc"}, 2); CodeOf(err) != shared.CodeValidationFailed {
		t.Errorf("a channel name that is not a word: %v, want VALIDATION_FAILED", err)
	}
}

// testAlertClaimedOnceAcrossInstances: replicas claiming one alert at once
// send it once; they share one VAPID pair.
func testAlertClaimedOnceAcrossInstances(t *testing.T, b Backend) {
	loc := b.New(t)
	stores := []store.AlertStore{alertStore(t, open(t, b, loc, Options{})), alertStore(t, open(t, b, loc, Options{}))}
	ctx := context.Background()
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			ok, err := stores[i%2].ClaimAlert(ctx, "same-alert", T0)
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if got := won.Load(); got != 1 {
		t.Errorf("claims won = %d, want 1", got)
	}
	keys := make([]store.VAPIDKeys, 2)
	for i := range 2 {
		wg.Go(func() {
			keys[i], _ = stores[i].VAPIDKeys(ctx, func() (store.VAPIDKeys, error) {
				return store.VAPIDKeys{Public: "pub" + string(rune('a'+i)), Private: "priv"}, nil
			})
		})
	}
	wg.Wait()
	if keys[0] != keys[1] || keys[0].Public == "" {
		t.Errorf("replicas got keys %+v and %+v, want one pair", keys[0], keys[1])
	}
}
