package pgstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/claude-usage/widget/server/store"
)

// TestAnotherReplicasSaveCostsOneRoundTrip: behind a balancer every save
// one replica makes costs the other its notice. That is one round trip
// (the account's figures and the announced version in one batch), and
// the reads the notice wakes (each open stream's event, the alert
// engine's evaluation) then find the new version cached: no round trip.
// Replica b talks to the database through a proxy that counts its round
// trips; its loops that run on a timer are held off for the test.
func TestAnotherReplicasSaveCostsOneRoundTrip(t *testing.T) {
	t.Parallel()
	_, dsn := freshDSN(t)
	px := startPGProxy(t, dsn)
	a := openTest(t, dsn, nil)
	b := openQuiet(t, px.dsn, nil)
	type seen struct {
		v                   store.Version
		err                 error
		before, latestTrips int64
	}
	got := make(chan seen, 1)
	cancel := b.Subscribe(func(account string) {
		// As the alert engine and a stream do, after the notice.
		before := px.ready.Load()
		v, err := b.Latest(context.Background(), account)
		got <- seen{v, err, before, px.ready.Load() - before}
	})
	defer cancel()
	waitListening(t, dsn, 2)

	// The first saves prepare b's statements on its connections and
	// start its rollup of the account.
	const warm, n = 3, 6
	var prev int64 = -1
	var lastID string
	for i := range warm + n {
		res := save(t, a, "acct", t0.Add(time.Duration(i)*time.Minute), float64(i))
		lastID = res.Version.ID
		var s seen
		select {
		case s = <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("save %d: b was not told within 10 s", i)
		}
		if s.err != nil {
			t.Fatalf("save %d: b's Latest: %v", i, s.err)
		}
		if s.v.ID != res.Version.ID || s.v.Number != i+1 || s.v.Total != i+1 || !s.v.StoredAt.Equal(res.Version.StoredAt) ||
			s.v.Snapshot.Meters[0].PercentUsed != float64(i) {
			t.Fatalf("save %d: b's Latest = %s, %d of %d, stored %s, %v%%; want %s, %d of %d, stored %s",
				i, s.v.ID, s.v.Number, s.v.Total, s.v.StoredAt, s.v.Snapshot.Meters[0].PercentUsed,
				res.Version.ID, i+1, i+1, res.Version.StoredAt)
		}
		if i >= warm {
			if got, want := s.before-prev, int64(1); got != want {
				t.Errorf("save %d: b took %d round trips for the notice, want %d", i, got, want)
			}
			if s.latestTrips != 0 {
				t.Errorf("save %d: b's Latest after the notice took %d round trips, want none", i, s.latestTrips)
			}
		}
		prev = s.before + s.latestTrips
	}
	// A version scraped before the latest (a scraper's outbox draining
	// late): the latest stays, its number and the total grow, and b still
	// answers from memory.
	latest := cachedLatestOf(t, b, "acct")
	lastID = save(t, a, "acct", t0.Add(-time.Hour), 50).Version.ID
	var late seen
	select {
	case late = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("late save: b was not told within 10 s")
	}
	if late.err != nil || late.v.ID != latest.ID || late.v.Number != warm+n+1 || late.v.Total != warm+n+1 {
		t.Errorf("after a late save b's Latest = %s, %d of %d, %v; want %s, %d of %d",
			late.v.ID, late.v.Number, late.v.Total, late.err, latest.ID, warm+n+1, warm+n+1)
	}
	if late.before-prev != 1 || late.latestTrips != 0 {
		t.Errorf("late save: b took %d round trips for the notice and %d for Latest, want 1 and none", late.before-prev, late.latestTrips)
	}
	if got, want := b.Count("acct"), warm+n+1; got != want {
		t.Errorf("b's Count = %d, want %d", got, want)
	}
	b.mu.RLock()
	through := b.rollups["acct"].ThroughSeq()
	b.mu.RUnlock()
	if want := mustSeq(t, a, lastID); int64(through) != want {
		t.Errorf("b's rollup is through seq %d, want %d (the last save's): the notices did not reach it", through, want)
	}
}

// cachedLatestOf is the account's latest version as s holds it in memory.
func cachedLatestOf(t *testing.T, s *Store, account string) store.Version {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.latest[account]
	if !ok {
		t.Fatalf("no latest version of %s in memory", account)
	}
	return v
}

// TestSaveAheadOfANoticeCostsNoCatchUp: behind a balancer a replica often
// stores a version whose predecessor the other replica stored a moment
// before, its notice still on the way. The save costs its one round trip
// and no catch-up query: the version waits in memory and goes into the
// rollup, in seq order, when the notice brings its predecessor. Here b's
// listener is held in a subscriber while a's second notice waits.
func TestSaveAheadOfANoticeCostsNoCatchUp(t *testing.T) {
	t.Parallel()
	_, dsn := freshDSN(t)
	px := startPGProxy(t, dsn)
	ctx := context.Background()
	a := openTest(t, dsn, nil)
	heard := make(chan string, 4)
	release := make(chan struct{})
	hold := true
	b := openQuiet(t, px.dsn, func(_, id string) { // on b's listener goroutine
		heard <- id
		if hold {
			hold = false
			<-release // b's listener waits here: a's next notice queues
		}
	})
	waitListening(t, dsn, 2)
	through := func() int64 {
		b.mu.RLock()
		defer b.mu.RUnlock()
		return int64(b.rollups["acct"].ThroughSeq())
	}
	first := save(t, a, "acct", t0, 10)
	if id := <-heard; id != first.Version.ID {
		t.Fatalf("b heard of %s, want %s", id, first.Version.ID)
	}
	second := save(t, a, "acct", t0.Add(time.Minute), 20)
	before := px.ready.Load()
	third := save(t, b, "acct", t0.Add(2*time.Minute), 30)
	if got := px.ready.Load() - before; got != 1 {
		t.Errorf("b's save ahead of the notice took %d round trips, want 1", got)
	}
	if got, want := through(), mustSeq(t, a, first.Version.ID); got != want {
		t.Errorf("b's rollup is through seq %d before the notice, want %d (the first save's)", got, want)
	}
	before = px.ready.Load()
	close(release)
	if id := <-heard; id != second.Version.ID {
		t.Fatalf("b heard of %s, want %s", id, second.Version.ID)
	}
	want := mustSeq(t, a, third.Version.ID)
	eventually(t, 5*time.Second, "b's rollup through its own save", func() bool { return through() == want })
	if got := px.ready.Load() - before; got != 1 {
		t.Errorf("the notice that filled the gap took %d round trips, want 1 (no catch-up)", got)
	}
	eventually(t, 5*time.Second, "a's rollup through b's save", func() bool {
		a.mu.RLock()
		defer a.mu.RUnlock()
		return int64(a.rollups["acct"].ThroughSeq()) == want
	})
	wa, err := a.Windows(ctx, "acct", "session", 0)
	if err != nil {
		t.Fatal(err)
	}
	wb, err := b.Windows(ctx, "acct", "session", 0)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(wa) != fmt.Sprint(wb) || len(wb) == 0 {
		t.Errorf("b's windows %v, a's %v: want the same, with all three saves", wb, wa)
	}
}

// openQuiet opens a store whose loops that run on a timer (retention,
// the periodic reload, the rollup's write) are held off for an hour once
// the retention run at Open is done, so that what it sends the database
// is what the test makes it do; onSaved is Options.OnSaved.
func openQuiet(t *testing.T, dsn string, onSaved func(account, id string)) *Store {
	t.Helper()
	retained := make(chan struct{}, 1)
	s := openTest(t, dsn, func(o *Options) {
		o.retainGap, o.refreshEvery, o.rollupDelay = time.Hour, time.Hour, time.Hour
		o.onRetention = func() {
			select {
			case retained <- struct{}{}:
			default:
			}
		}
		o.OnSaved = onSaved
	})
	select {
	case <-retained:
	case <-time.After(time.Minute):
		t.Fatal("no retention run after Open")
	}
	return s
}
