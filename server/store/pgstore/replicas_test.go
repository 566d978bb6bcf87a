package pgstore

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/store/storetest"
	"github.com/claude-usage/widget/shared"
)

// savedLog records OnSaved calls.
type savedLog struct {
	mu    sync.Mutex
	calls [][2]string
}

func (l *savedLog) add(account, id string) {
	l.mu.Lock()
	l.calls = append(l.calls, [2]string{account, id})
	l.mu.Unlock()
}

func (l *savedLog) has(account, id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.calls {
		if c[0] == account && c[1] == id {
			return true
		}
	}
	return false
}

func (l *savedLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.calls)
}

// TestNotifyReachesTheOtherReplica: a snapshot stored through one store
// reaches the other's OnSaved (within a second), after its figures include
// it; a store is not told about its own saves. Scraper reports travel too.
func TestNotifyReachesTheOtherReplica(t *testing.T) {
	t.Parallel()
	_, dsn := freshDSN(t)
	var gotA, gotB savedLog
	a := openTest(t, dsn, func(o *Options) { o.OnSaved = gotA.add })
	b := openTest(t, dsn, func(o *Options) {
		o.OnSaved = func(account, id string) {
			gotB.add(account, id)
		}
	})
	waitListening(t, dsn, 2)
	res := save(t, b, "work", t0, 10)
	start := time.Now()
	eventually(t, time.Second, "OnSaved on the other replica", func() bool { return gotA.has("work", res.Version.ID) })
	t.Logf("NOTIFY reached the other replica in %s", time.Since(start))
	if got, want := a.Count("work"), 1; got != want {
		t.Errorf("the other replica's Count = %d, want %d", got, want)
	}
	if got := a.Accounts(); len(got) != 1 || got[0] != "work" {
		t.Errorf("the other replica's Accounts = %v", got)
	}
	if gotB.len() != 0 {
		t.Errorf("the saving replica was told about its own save: %v", gotB.calls)
	}

	st := shared.ScraperStatus{Account: "work", At: t0, OK: false, Category: "NOT_LOGGED_IN"}
	if _, err := b.SaveScraperStatus(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "scraper report on the other replica", func() bool {
		got, ok := a.ScraperStatus("work")
		return ok && got.Category == "NOT_LOGGED_IN"
	})
}

// TestListenerReconnects ends the listener's connection from the server
// side; the store reconnects and reports what was stored meanwhile.
func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	db, dsn := freshDSN(t)
	var got savedLog
	var log testutil.LogBuffer
	a := openTest(t, dsn, func(o *Options) { o.OnSaved = got.add; o.Logger = testLogger(&log) })
	b := openTest(t, dsn, nil)
	waitListening(t, dsn, 2)
	pg.Exec(t, db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'")
	res := save(t, b, "default", t0, 5)
	eventually(t, 5*time.Second, "the reconnected listener reports the save", func() bool {
		return got.has("default", res.Version.ID) || got.has("default", "")
	})
	if got, want := a.Count("default"), 1; got != want {
		t.Errorf("Count after reconnecting = %d, want %d", got, want)
	}
	eventually(t, 5*time.Second, "reconnect logged", func() bool { return log.Contains("database listener reconnected") })
	if !log.Contains("database listener lost its connection; reconnecting") {
		t.Error("the lost connection was not logged")
	}
}

// waitListening waits until n connections of the database LISTEN.
func waitListening(t *testing.T, dsn string, n int) {
	t.Helper()
	s := openTestPool(t, dsn)
	eventually(t, 5*time.Second, "listeners connected", func() bool {
		var c int
		_ = s.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'").Scan(&c)
		return c >= n
	})
}

// TestRetentionOneReplicaAtATime holds the retention lock as another
// replica would: saves go on, the background run skips, and Retain waits
// for the lock and then removes what it must.
func TestRetentionOneReplicaAtATime(t *testing.T) {
	t.Parallel()
	_, dsn := freshDSN(t)
	runs := make(chan struct{}, 16)
	s := openTest(t, dsn, func(o *Options) {
		o.RetentionVersions, o.RetentionDays = 1, 1
		o.retainGap = time.Nanosecond
		o.onRetention = func() { runs <- struct{}{} }
	})
	<-runs // Open's run
	ctx := context.Background()
	holder := openTestPool(t, dsn)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockRetention); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	save(t, s, "default", now.Add(-5*24*time.Hour), 1)
	<-runs
	save(t, s, "default", now.Add(-4*24*time.Hour), 2)
	<-runs
	if got, want := s.Count("default"), 2; got != want {
		t.Errorf("Count while another replica holds the lock = %d, want %d (the run skipped)", got, want)
	}
	done := make(chan map[string]int, 1)
	go func() {
		r, _ := s.Retain(ctx)
		done <- r
	}()
	select {
	case <-done:
		t.Fatal("Retain ran while another replica held the lock")
	case <-time.After(100 * time.Millisecond):
	}
	_ = tx.Rollback(ctx)
	if got := <-done; got["default"] != 1 {
		t.Errorf("Retain removed %v, want 1 of default", got)
	}
	if got, want := s.Count("default"), 1; got != want {
		t.Errorf("Count = %d, want %d", got, want)
	}
}

// TestLatestFollowsTheOtherReplica: the latest version each instance keeps
// in memory follows what another replica stores and what its retention
// removes.
func TestLatestFollowsTheOtherReplica(t *testing.T) {
	t.Parallel()
	_, dsn := freshDSN(t)
	var got savedLog
	aRan := make(chan struct{}, 1)
	a := openTest(t, dsn, func(o *Options) {
		o.OnSaved = got.add
		// A runs retention once, at Open: B's run after its save skips
		// while another replica's run holds the lock (the next save runs
		// it), and there is no next save here.
		o.retainGap = time.Hour
		o.onRetention = func() { aRan <- struct{}{} }
	})
	ctx := context.Background()
	first := save(t, a, "default", t0, 1)
	if v, err := a.Latest(ctx, "default"); err != nil || v.ID != first.Version.ID {
		t.Fatalf("Latest = %s, %v", v.ID, err)
	}
	<-aRan
	// B keeps 1 version: its retention removes first after its save.
	b := openTest(t, dsn, func(o *Options) { o.RetentionVersions, o.RetentionDays = 1, 1; o.retainGap = time.Nanosecond })
	waitListening(t, dsn, 2)
	second := save(t, b, "default", t0.Add(time.Hour), 2)
	eventually(t, 2*time.Second, "A's latest is B's save with one version left", func() bool {
		v, err := a.Latest(ctx, "default")
		return err == nil && v.ID == second.Version.ID && v.Number == 1 && v.Total == 1
	})
	if got, want := a.Count("default"), 1; got != want {
		t.Errorf("A's Count = %d, want %d", got, want)
	}
}

// TestCountNotBehindLatest: when Latest reads the database and finds
// versions removed whose notice has not arrived (here none is sent, as a
// row changed by something else would), Count and Accounts include the
// removal once Latest returns, up to the account's last version.
func TestCountNotBehindLatest(t *testing.T) {
	t.Parallel()
	db, dsn := freshDSN(t)
	var got savedLog
	a := openTest(t, dsn, func(o *Options) { o.OnSaved = got.add })
	b := openTest(t, dsn, nil)
	waitListening(t, dsn, 2)
	ctx := context.Background()
	first := save(t, a, "default", t0, 1)
	second := save(t, b, "default", t0.Add(time.Hour), 2)
	// A's figures count both, and it holds B's version as the latest in
	// memory, which it trusts until the account changes. Dropped here so
	// that Latest reads the database, as it does once a periodic reload
	// or a notice changed the figures.
	eventually(t, 2*time.Second, "A hears of B's save", func() bool { return got.has("default", second.Version.ID) })
	a.dropLatestLocked("default")

	pg.Exec(t, db, "DELETE FROM usage_versions WHERE id = $1", first.Version.ID)
	v, err := a.Latest(ctx, "default")
	if err != nil || v.ID != second.Version.ID || v.Total != 1 {
		t.Fatalf("Latest = %s of %d, %v; want %s of 1", v.ID, v.Total, err, second.Version.ID)
	}
	if got, want := a.Count("default"), 1; got != want {
		t.Errorf("Count after Latest = %d, want %d", got, want)
	}

	pg.Exec(t, db, "DELETE FROM usage_versions WHERE id = $1", second.Version.ID)
	if _, err := a.Latest(ctx, "default"); codeOf(err) != shared.CodeNoData {
		t.Fatalf("Latest with no version left: %v, want NO_DATA", err)
	}
	if got, want := a.Count("default"), 0; got != want {
		t.Errorf("Count after NO_DATA = %d, want %d", got, want)
	}
	if got := a.Accounts(); len(got) != 0 {
		t.Errorf("Accounts after NO_DATA = %v, want none", got)
	}
}

// TestRetainAfterAnotherRun: a run just before Retain's (another
// replica's, or this instance's own in the background) removed what there
// was to remove, and its notice or reload has not come yet; Retain finds
// nothing left, and Count leaves the removed version out when it returns.
func TestRetainAfterAnotherRun(t *testing.T) {
	t.Parallel()
	db, dsn := freshDSN(t)
	runs := make(chan struct{}, 16)
	s := openTest(t, dsn, func(o *Options) {
		o.RetentionVersions, o.RetentionDays = 2, 1
		o.onRetention = func() { runs <- struct{}{} }
	})
	<-runs // Open's run; the next waits RetainGap
	now := time.Now()
	oldest := save(t, s, "default", now.Add(-5*24*time.Hour), 1)
	save(t, s, "default", now.Add(-4*24*time.Hour), 2)
	save(t, s, "default", now.Add(-3*24*time.Hour), 3)
	// What the other run removes, without a notice reaching s.
	pg.Exec(t, db, "DELETE FROM usage_versions WHERE id = $1", oldest.Version.ID)
	removed, err := s.Retain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 0 {
		t.Errorf("Retain removed %v, want nothing left to remove", removed)
	}
	if got, want := s.Count("default"), 2; got != want {
		t.Errorf("Count after Retain = %d, want %d", got, want)
	}
	if st := s.Status(); len(st.Accounts) != 1 || st.Accounts[0].Count != 2 {
		t.Errorf("Status().Accounts = %+v, want 2 versions", st.Accounts)
	}
}

// TestSubscribe: a subscriber hears of this instance's saves and of the
// other replica's, not of replays, and nothing after cancel.
func TestSubscribe(t *testing.T) {
	t.Parallel()
	_, dsn := freshDSN(t)
	a := openTest(t, dsn, nil)
	b := openTest(t, dsn, nil)
	waitListening(t, dsn, 2)
	var got savedLog
	cancel := a.Subscribe(func(account string) { got.add(account, "") })
	ctx := context.Background()
	if _, err := a.Save(ctx, saveReq("mine", t0, 1, "k-sub")); err != nil {
		t.Fatal(err)
	}
	if !got.has("mine", "") {
		t.Error("own save not reported on return")
	}
	if _, err := a.Save(ctx, saveReq("mine", t0, 1, "k-sub")); err != nil {
		t.Fatal(err)
	}
	save(t, b, "theirs", t0, 2)
	eventually(t, time.Second, "the other replica's save reported", func() bool { return got.has("theirs", "") })
	if n := got.len(); n != 2 {
		t.Errorf("calls = %v, want one per stored snapshot (no replay)", got.calls)
	}
	cancel()
	save(t, a, "mine", t0.Add(time.Minute), 3)
	if n := got.len(); n != 2 {
		t.Errorf("a cancelled subscriber was called: %v", got.calls)
	}
}

// TestRollupFollowsTheOtherReplica: a window finished through one replica
// is in the other's Windows once the NOTIFY arrived.
func TestRollupFollowsTheOtherReplica(t *testing.T) {
	t.Parallel()
	_, dsn := freshDSN(t)
	a := openTest(t, dsn, nil)
	b := openTest(t, dsn, nil)
	waitListening(t, dsn, 2)
	ctx := context.Background()
	reset := t0.Add(time.Hour)
	sn := storetest.Snap("default", t0, 77)
	sn.Meters[0].ResetsAt = &reset
	if _, err := b.Save(ctx, store.SaveRequest{Snapshot: sn}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "the window on the other replica", func() bool {
		ws, err := a.Windows(ctx, "default", "session", 0)
		return err == nil && len(ws) == 1 && ws[0].PeakPercent == 77
	})
}
