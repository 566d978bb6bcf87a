package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

func testReopen(t *testing.T, b Backend) {
	loc := b.New(t)
	ctx := context.Background()
	s := open(t, b, loc, Options{})
	for i, off := range []int{30, 10, 20, 0, 40, 20} { // out of order, one tie
		sn := Snap("default", T0.Add(time.Duration(off)*time.Minute), float64(i))
		sn.ExtractionErrors = map[string]string{"weekly_opus": "not shown"}
		sn.Partial = true
		if _, err := s.Save(ctx, store.SaveRequest{Snapshot: sn, IdempotencyKey: fmt.Sprintf("key-%d", i), BodyHash: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	mustSave(t, s, Snap("second", T0, 5))
	before := map[string][]store.Version{}
	for _, a := range s.Accounts() {
		before[a], _ = s.History(ctx, a, time.Time{}, 0)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, b, loc, Options{})
	if got, want := s2.Accounts(), []string{"default", "second"}; !slices.Equal(got, want) {
		t.Fatalf("Accounts after reopen = %v, want %v", got, want)
	}
	for a, want := range before {
		got, err := s2.History(ctx, a, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("account %s: history after reopen differs\n got: %+v\nwant: %+v", a, got, want)
		}
	}
	// New versions continue the arrival order: a tie with an existing
	// ScrapedAt sorts after the versions stored before the restart.
	v := mustSave(t, s2, Snap("default", T0.Add(20*time.Minute), 99))
	if got, want := v.Number, 5; got != want {
		t.Errorf("tie saved after reopen has Number %d, want %d (after both earlier ties)", got, want)
	}
}

func testIdempotency(t *testing.T, b Backend) {
	loc := b.New(t)
	ctx := context.Background()
	s := open(t, b, loc, Options{})
	req := store.SaveRequest{Snapshot: Snap("default", T0.Add(time.Hour), 42), IdempotencyKey: "d4k2abc", BodyHash: "sha256:aaa"}
	first, err := s.Save(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Replayed {
		t.Error("first save reported Replayed")
	}
	t.Run("same key and body replays", func(t *testing.T) {
		again, err := s.Save(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Replayed {
			t.Error("Replayed = false, want true")
		}
		if got, want := again.Version.ID, first.Version.ID; got != want {
			t.Errorf("replayed id = %s, want %s", got, want)
		}
		if got, want := again.Version.StoredAt, first.Version.StoredAt; !got.Equal(want) {
			t.Errorf("replayed StoredAt = %s, want %s", got, want)
		}
		if got, want := s.Count("default"), 1; got != want {
			t.Errorf("Count = %d, want %d", got, want)
		}
	})
	t.Run("replay reports the current number", func(t *testing.T) {
		mustSave(t, s, Snap("default", T0, 1)) // older: shifts the keyed version to 2
		again, err := s.Save(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := again.Version.Number, 2; got != want {
			t.Errorf("replayed Number = %d, want %d", got, want)
		}
		if got, want := again.Version.Total, 2; got != want {
			t.Errorf("replayed Total = %d, want %d", got, want)
		}
	})
	t.Run("same key with another body is refused", func(t *testing.T) {
		other := req
		other.BodyHash = "sha256:bbb"
		_, err := s.Save(ctx, other)
		if got, want := CodeOf(err), shared.CodeIdempotencyKeyReused; got != want {
			t.Fatalf("code = %s, want %s (err %v)", got, want, err)
		}
		if got, want := s.Count("default"), 2; got != want {
			t.Errorf("Count = %d, want %d", got, want)
		}
	})
	t.Run("same key for another account is refused", func(t *testing.T) {
		other := req
		other.Snapshot = Snap("work", T0, 1)
		if _, err := s.Save(ctx, other); CodeOf(err) != shared.CodeIdempotencyKeyReused {
			t.Errorf("err = %v, want IDEMPOTENCY_KEY_REUSED", err)
		}
	})
	t.Run("replay after restart", func(t *testing.T) {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := open(t, b, loc, Options{})
		again, err := s2.Save(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Replayed || again.Version.ID != first.Version.ID {
			t.Errorf("after restart: Replayed=%v id=%s, want true %s", again.Replayed, again.Version.ID, first.Version.ID)
		}
		other := req
		other.BodyHash = "sha256:ccc"
		if _, err := s2.Save(ctx, other); CodeOf(err) != shared.CodeIdempotencyKeyReused {
			t.Errorf("after restart, other body: err = %v, want IDEMPOTENCY_KEY_REUSED", err)
		}
		if got, want := s2.Count("default"), 2; got != want {
			t.Errorf("Count after restart = %d, want %d", got, want)
		}
	})
}

// saveConcurrently sends req n times at once, spread over stores, and
// checks that exactly one save wrote and all answered with its id.
func saveConcurrently(t *testing.T, stores []store.Store, req store.SaveRequest, n int) {
	t.Helper()
	results := make([]store.SaveResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = stores[i%len(stores)].Save(context.Background(), req)
		})
	}
	close(start)
	wg.Wait()
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("save %d: %v", i, errs[i])
		}
		if !results[i].Replayed {
			fresh++
		}
		if results[i].Version.ID != results[0].Version.ID {
			t.Errorf("save %d got id %s, save 0 got %s", i, results[i].Version.ID, results[0].Version.ID)
		}
	}
	if got, want := fresh, 1; got != want {
		t.Errorf("saves that wrote = %d, want %d", got, want)
	}
	for i, s := range stores {
		if vs, err := s.History(context.Background(), "default", time.Time{}, 0); err != nil || len(vs) != 1 {
			t.Errorf("store %d: History = %d versions, %v; want 1", i, len(vs), err)
		}
	}
}

func testConcurrentSameKey(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	saveConcurrently(t, []store.Store{s}, store.SaveRequest{Snapshot: Snap("default", T0, 42), IdempotencyKey: "same", BodyHash: "h"}, 8)
	if got, want := s.Count("default"), 1; got != want {
		t.Errorf("Count = %d, want %d", got, want)
	}
}

// testTwoInstancesSameKey is a replay reaching another replica while the
// first is still writing: one version, both answer with it.
func testTwoInstancesSameKey(t *testing.T, b Backend) {
	loc := b.New(t)
	a, c := open(t, b, loc, Options{}), open(t, b, loc, Options{})
	saveConcurrently(t, []store.Store{a, c}, store.SaveRequest{Snapshot: Snap("default", T0, 42), IdempotencyKey: "same-across", BodyHash: "h"}, 16)
	other := store.SaveRequest{Snapshot: Snap("default", T0, 42), IdempotencyKey: "same-across", BodyHash: "other"}
	if _, err := c.Save(context.Background(), other); CodeOf(err) != shared.CodeIdempotencyKeyReused {
		t.Errorf("other body on the second instance: %v, want IDEMPOTENCY_KEY_REUSED", err)
	}
}

// testTwoInstancesShareHistory: what one instance stores, the other reads,
// numbered the same.
func testTwoInstancesShareHistory(t *testing.T, b Backend) {
	loc := b.New(t)
	a, c := open(t, b, loc, Options{}), open(t, b, loc, Options{})
	ctx := context.Background()
	mustSave(t, a, Snap("default", T0.Add(time.Hour), 1))
	v := mustSave(t, c, Snap("default", T0, 2))
	if got, want := v.Number, 1; got != want {
		t.Errorf("late snapshot via the second instance: Number = %d, want %d", got, want)
	}
	for i, s := range []store.Store{a, c} {
		first, err := s.ByNumber(ctx, "default", 1)
		if err != nil || first.ID != v.ID || first.Total != 2 {
			t.Errorf("instance %d: version 1 = %s of %d, %v; want %s of 2", i, first.ID, first.Total, err, v.ID)
		}
	}
}

func testStatusAfterOpen(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	st := s.Status()
	if !st.Writable || st.WriteErr != nil {
		t.Errorf("Writable = %v (%v), want true", st.Writable, st.WriteErr)
	}
	if st.CheckedAt.IsZero() {
		t.Error("CheckedAt is zero after Open's write check")
	}
	if got, want := st.Breaker, shared.StateClosed; got != want {
		t.Errorf("Breaker = %v, want %v", got, want)
	}
	if st.Dir == "" {
		t.Error("Status names no location")
	}
	if err := s.CheckWritable(context.Background()); err != nil {
		t.Errorf("CheckWritable = %v", err)
	}
	mustSave(t, s, Snap("default", T0, 1))
	if st := s.Status(); len(st.Accounts) != 1 || st.Accounts[0].Count != 1 || !st.Accounts[0].Latest.Equal(T0) {
		t.Errorf("Status().Accounts = %+v, want default with 1 version at %s", st.Accounts, T0)
	}
}

func testSaveAfterClose(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Save(context.Background(), store.SaveRequest{Snapshot: Snap("default", T0, 1)})
	if got, want := CodeOf(err), shared.CodeStorageUnavailable; got != want {
		t.Errorf("Save after Close: code = %s, want %s", got, want)
	}
	if _, err := s.SaveScraperStatus(context.Background(), shared.ScraperStatus{At: T0, OK: true}); CodeOf(err) != shared.CodeStorageUnavailable {
		t.Errorf("SaveScraperStatus after Close: %v, want STORAGE_UNAVAILABLE", err)
	}
	if got, want := CodeOf(s.CheckWritable(context.Background())), shared.CodeStorageUnavailable; got != want {
		t.Errorf("CheckWritable after Close: code = %s, want %s", got, want)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
