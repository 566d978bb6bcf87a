package store

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/claude-usage/widget/shared"
)

// TestAlertStateSurvivesReopen: every piece of alert state is read back by
// a new store on the same directory, and every file is private (0600).
func TestAlertStateSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTest(t, dir, nil)
	if err := s.SaveAlertState(ctx, []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if first, err := s.ClaimAlert(ctx, "abc", t0); err != nil || !first {
		t.Fatalf("first claim = %v, %v; want true", first, err)
	}
	sub := PushSubscription{Endpoint: "https://push.example/1", P256dh: "k", Auth: "a", CreatedAt: t0}
	if err := s.SavePushSubscription(ctx, sub, 2); err != nil {
		t.Fatal(err)
	}
	gens := 0
	gen := func() (VAPIDKeys, error) { gens++; return VAPIDKeys{Public: "pub", Private: "priv"}, nil }
	if _, err := s.VAPIDKeys(ctx, gen); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnqueueDelivery(ctx, Delivery{Key: "k1", Channel: "webhook", Payload: json.RawMessage(`{}`)}, 10); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	s2 := openTest(t, dir, nil)
	if raw, err := s2.AlertState(ctx); err != nil || string(raw) != `{"v":1}` {
		t.Errorf("state = %q, %v", raw, err)
	}
	if first, err := s2.ClaimAlert(ctx, "abc", t0); err != nil || first {
		t.Errorf("claim after reopen = %v, %v; want false (already sent)", first, err)
	}
	if err := s2.ReleaseAlert(ctx, "abc"); err != nil {
		t.Fatal(err)
	}
	if first, _ := s2.ClaimAlert(ctx, "abc", t0); !first {
		t.Error("a released claim must be claimable again")
	}
	subs, err := s2.PushSubscriptions(ctx)
	if err != nil || len(subs) != 1 || subs[0].Endpoint != sub.Endpoint {
		t.Errorf("subscriptions = %+v, %v", subs, err)
	}
	k, err := s2.VAPIDKeys(ctx, gen)
	if err != nil || k.Public != "pub" || gens != 1 {
		t.Errorf("keys = %+v, %v, generated %d times; want the stored pair, generated once", k, err, gens)
	}
	q, err := s2.Deliveries(ctx, "webhook")
	if err != nil || len(q) != 1 || q[0].Key != "k1" {
		t.Errorf("queue = %+v, %v", q, err)
	}
	for _, name := range []string{AlertStateFile, AlertClaimsFile, PushSubscriptionsFile, VAPIDKeysFile, "alert-queue-webhook.json"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
			t.Errorf("%s mode = %v, want %v", name, got, want)
		}
	}
}

func TestPushSubscriptionLimitAndReplace(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), nil)
	for i, ep := range []string{"https://a.example/1", "https://a.example/2"} {
		if err := s.SavePushSubscription(ctx, PushSubscription{Endpoint: ep, CreatedAt: t0}, 2); err != nil {
			t.Fatalf("sub %d: %v", i, err)
		}
	}
	err := s.SavePushSubscription(ctx, PushSubscription{Endpoint: "https://a.example/3"}, 2)
	if got, want := codeOf(err), shared.CodeSubscriptionLimit; got != want {
		t.Errorf("third subscription: code %s, want %s", got, want)
	}
	// The same endpoint again replaces (a browser re-subscribing), even at the limit.
	if err := s.SavePushSubscription(ctx, PushSubscription{Endpoint: "https://a.example/1", Kinds: []string{"reset"}}, 2); err != nil {
		t.Fatalf("replace at the limit: %v", err)
	}
	subs, _ := s.PushSubscriptions(ctx)
	if got, want := len(subs), 2; got != want {
		t.Fatalf("%d subscriptions, want %d", got, want)
	}
	if got, want := subs[0].CreatedAt, t0; !got.Equal(want) {
		t.Errorf("replaced subscription CreatedAt = %v, want the original %v", got, want)
	}
	if ok, err := s.DeletePushSubscription(ctx, "https://a.example/1"); !ok || err != nil {
		t.Errorf("delete = %v, %v", ok, err)
	}
	if ok, _ := s.DeletePushSubscription(ctx, "https://a.example/1"); ok {
		t.Error("deleting twice reported a deletion")
	}
}

func TestDeliveryQueueBoundDropsOldest(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), nil)
	var dropped []Delivery
	for _, k := range []string{"a", "b", "c", "c"} {
		d, err := s.EnqueueDelivery(ctx, Delivery{Key: k, Channel: "ntfy", Payload: json.RawMessage(`{}`)}, 2)
		if err != nil {
			t.Fatal(err)
		}
		dropped = append(dropped, d...)
	}
	if got, want := len(dropped), 1; got != want || dropped[0].Key != "a" {
		t.Fatalf("dropped %+v, want only the oldest (a)", dropped)
	}
	q, _ := s.Deliveries(ctx, "ntfy")
	if got, want := len(q), 2; got != want || q[0].Key != "b" || q[1].Key != "c" {
		t.Fatalf("queue %+v, want b, c (a duplicate key is not added)", q)
	}
	q[0].Attempts = 3
	if err := s.UpdateDelivery(ctx, q[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveDelivery(ctx, "ntfy", "c"); err != nil {
		t.Fatal(err)
	}
	q, _ = s.Deliveries(ctx, "ntfy")
	if len(q) != 1 || q[0].Attempts != 3 {
		t.Errorf("queue %+v, want b with 3 attempts", q)
	}
	if _, err := s.EnqueueDelivery(ctx, Delivery{Key: "x", Channel: "../etc"}, 2); codeOf(err) != shared.CodeValidationFailed {
		t.Errorf("a channel name that is not a word: %v, want VALIDATION_FAILED", err)
	}
}

func TestAlertFileThatDoesNotParseIsAnError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, AlertClaimsFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, dir, nil)
	_, err := s.ClaimAlert(context.Background(), "x", t0)
	if got, want := codeOf(err), shared.CodeStorageReadFailed; got != want {
		t.Errorf("claim over a damaged file: %v, want %s (never guess and send twice)", err, want)
	}
}
