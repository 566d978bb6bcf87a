package pgstore

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/xid"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/store/storetest"
	"github.com/claude-usage/widget/shared"
)

const day = 24 * time.Hour

// oldWindow is a window ten days back (beyond the tests' one-day
// retention) and the snapshot of it at offset minutes with pct.
func oldWindow() (start time.Time, snap func(offset int, pct float64) shared.Snapshot) {
	start = time.Now().Add(-10 * day).Truncate(time.Hour).UTC()
	reset := start.Add(2 * time.Hour)
	return start, func(offset int, pct float64) shared.Snapshot {
		sn := storetest.Snap("default", start.Add(time.Duration(offset)*time.Minute), pct)
		sn.Meters[0].ResetsAt = &reset
		return sn
	}
}

// rawSave is a replica's save transaction (insertSQL, placeSQL, commit)
// on its own connection, by a replica that stops right after its commit,
// before it writes any rollup. notify false leaves out the NOTIFY, as a
// writer that sends none (an import, psql) or a notice the listener
// missed.
func rawSave(ctx context.Context, conn *pgx.Conn, sn shared.Snapshot, key, hash string, notify bool) error {
	raw, _ := json.Marshal(sn)
	ss, sns := split(sn.ScrapedAt)
	id := xid.New().String()
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, insertSQL, id, sn.Account, ss, sns, time.Now().UTC(), key, hash, raw)
		if err != nil {
			return err
		}
		if _, err := pgx.CollectOneRow(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() }); err != nil {
			return err
		}
		if !notify {
			return nil
		}
		payload, _ := json.Marshal(notice{Account: sn.Account, ID: id, Origin: "a-replica-that-stopped"})
		var n, total int
		return tx.QueryRow(ctx, placeSQL, sn.Account, ss, sns, id, string(payload)).Scan(&n, &total, nil)
	})
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// checkOldWindow asserts what history answers for the old window after
// retention removed its versions: the hour's maximum and the window's
// peak and samples.
func checkOldWindow(t *testing.T, label string, s *Store, start time.Time, peak float64, samples int) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Retain(ctx); err != nil {
		t.Fatal(err)
	}
	// The background run begun at Open may hold the work and refresh the
	// figures just after Retain found nothing left.
	eventually(t, 5*time.Second, label+": one version left after retention", func() bool { return s.Count("default") == 1 })
	pts, err := s.Series(ctx, "default", "session", start.Add(-time.Hour), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || !pts[0].At.Equal(start) || pts[0].PercentUsed != peak {
		t.Errorf("%s: Series = %+v, want the hour's maximum %g at %s, then the kept version", label, pts, peak, start)
	}
	ws, err := s.Windows(ctx, "default", "session", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws[0].PeakPercent != peak || ws[0].Samples != samples {
		t.Errorf("%s: Windows = %+v, want one with peak %g and %d samples", label, ws, peak, samples)
	}
}

func retainOneDay(o *Options) { o.RetentionVersions, o.RetentionDays = 1, 1 }

// TestRollupCompleteWhenSavesCommitOutOfOrder: of two saves of one
// account on two replicas, the one that began first is held inside its
// insert (a test trigger waits on an advisory lock the test holds); the
// other is made meanwhile. Before migration 0006 the held one had drawn
// the lower seq already and committed after the other, whose replica
// had written its rollup "through" the higher seq: after a restart the
// held version was never in the rollup. Now the later save waits for the
// held one's commit, and after a restart (and retention removing the
// versions) the held version's 90 % is in the hour and the window.
func TestRollupCompleteWhenSavesCommitOutOfOrder(t *testing.T) {
	t.Parallel()
	db, dsn := freshDSN(t)
	ctx := context.Background()
	start, snapAt := oldWindow()
	a := openTest(t, dsn, retainOneDay)
	if _, err := a.Save(ctx, store.SaveRequest{Snapshot: snapAt(0, 20)}); err != nil {
		t.Fatal(err)
	}
	save(t, a, "default", time.Now().Add(-time.Minute).UTC(), 5)

	pg.Exec(t, db, `CREATE FUNCTION test_hold() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NEW; END $$`)
	// Named to fire after usage_order_version (BEFORE triggers go by name).
	pg.Exec(t, db, `CREATE TRIGGER zz_test_hold BEFORE INSERT ON usage_versions
		FOR EACH ROW WHEN (NEW.body_hash = 'hold') EXECUTE FUNCTION test_hold()`)
	control := connect(t, dsn)
	if _, err := control.Exec(ctx, "SELECT pg_advisory_lock(4242)"); err != nil {
		t.Fatal(err)
	}
	waiting := func(advisory bool) bool {
		var n int
		// This database's sessions only: tests in other databases of the
		// cluster wait for locks too (a store's migration lock at Open).
		_ = control.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE NOT l.granted AND a.datname = current_database() AND (l.locktype = 'advisory') = $1`, advisory).Scan(&n)
		return n > 0
	}

	late := make(chan error, 1)
	lateConn := connect(t, dsn)
	go func() { late <- rawSave(ctx, lateConn, snapAt(5, 90), "late", "hold", true) }()
	eventually(t, 5*time.Second, "the late save held in its insert", func() bool { return waiting(true) })

	early := make(chan error, 1)
	go func() {
		_, err := a.Save(ctx, store.SaveRequest{Snapshot: snapAt(10, 40)})
		early <- err
	}()
	earlyDone := false
	eventually(t, 5*time.Second, "the early save stored or waiting for a lock", func() bool {
		select {
		case err := <-early:
			if err != nil {
				t.Fatalf("early save: %v", err)
			}
			earlyDone = true
			return true
		default:
			return waiting(false)
		}
	})
	if earlyDone {
		// The early save committed first: its replica writes its rollup
		// and stops before the late commit reaches it.
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := control.Exec(ctx, "SELECT pg_advisory_unlock(4242)"); err != nil {
		t.Fatal(err)
	}
	if err := <-late; err != nil {
		t.Fatalf("late save: %v", err)
	}
	if !earlyDone {
		if err := <-early; err != nil {
			t.Fatalf("early save: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var lateSeq, earlySeq int64
	if err := control.QueryRow(ctx, "SELECT (SELECT seq FROM usage_versions WHERE idem_key = 'late'), "+
		"(SELECT max(seq) FROM usage_versions WHERE scraped_s = $1)", start.Add(10*time.Minute).Unix()).Scan(&lateSeq, &earlySeq); err != nil {
		t.Fatal(err)
	}
	if lateSeq >= earlySeq {
		t.Errorf("late seq %d, early seq %d: the save that committed later must have the higher seq", lateSeq, earlySeq)
	}
	b := openTest(t, dsn, retainOneDay)
	checkOldWindow(t, "after a restart", b, start, 90, 3)
}

// TestRollupCatchesUpWhatNoNoticeBrought: a version stored without a
// notice reaching this replica (here its writer sends none; the same as
// one sent while the listener was away) is in the rollup as soon as the
// replica learns of it: at its own next save, whose predecessor it
// lacks, and at the listener's reconnect, which reloads the figures.
// Both survive a restart.
func TestRollupCatchesUpWhatNoNoticeBrought(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		samples int // in the window: the first, the unannounced, the next save's
		learn   func(t *testing.T, db string, a *Store, snapAt func(int, float64) shared.Snapshot)
	}{
		{"at the next save", 3, func(t *testing.T, _ string, a *Store, snapAt func(int, float64) shared.Snapshot) {
			if _, err := a.Save(context.Background(), store.SaveRequest{Snapshot: snapAt(10, 40)}); err != nil {
				t.Fatal(err)
			}
		}},
		{"at the listener's reconnect", 2, func(t *testing.T, db string, a *Store, _ func(int, float64) shared.Snapshot) {
			pg.Exec(t, db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, dsn := freshDSN(t)
			ctx := context.Background()
			start, snapAt := oldWindow()
			a := openTest(t, dsn, retainOneDay)
			if _, err := a.Save(ctx, store.SaveRequest{Snapshot: snapAt(0, 20)}); err != nil {
				t.Fatal(err)
			}
			if err := rawSave(ctx, connect(t, dsn), snapAt(5, 90), "", "", false); err != nil {
				t.Fatal(err)
			}
			waitListening(t, dsn, 1)
			tc.learn(t, db, a, snapAt)
			eventually(t, 5*time.Second, "the window with the unannounced version", func() bool {
				ws, err := a.Windows(ctx, "default", "session", 0)
				return err == nil && len(ws) == 1 && ws[0].PeakPercent == 90
			})
			save(t, a, "default", time.Now().Add(-time.Minute).UTC(), 5)
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			b := openTest(t, dsn, retainOneDay)
			checkOldWindow(t, "after a restart", b, start, 90, tc.samples)
		})
	}
}

// TestRetentionKeepsWhatNoRollupHas: retention removes only versions a
// stored rollup covers. Two versions no replica has heard of (their
// writer sends no notice): an old one at 90 %, then a recent one, so the
// old one is neither among the newest nor within the kept day. b's
// Retain, whose rollup lacks both, leaves the old one; once a's rollup
// took them in (its next save finds its predecessor missing and catches
// up) the next run removes it, and its 90 % stays in the window.
func TestRetentionKeepsWhatNoRollupHas(t *testing.T) {
	t.Parallel()
	_, dsn := freshDSN(t)
	ctx := context.Background()
	_, snapAt := oldWindow()
	a := openTest(t, dsn, retainOneDay)
	b := openTest(t, dsn, retainOneDay)
	waitListening(t, dsn, 2)
	if _, err := a.Save(ctx, store.SaveRequest{Snapshot: snapAt(0, 20)}); err != nil {
		t.Fatal(err)
	}
	raw := connect(t, dsn)
	if err := rawSave(ctx, raw, snapAt(5, 90), "", "", false); err != nil {
		t.Fatal(err)
	}
	if err := rawSave(ctx, raw, storetest.Snap("default", time.Now().Add(-2*time.Minute).UTC(), 5), "", "", false); err != nil {
		t.Fatal(err)
	}
	exists := func() bool {
		var n int
		if err := raw.QueryRow(ctx, "SELECT count(*) FROM usage_versions WHERE scraped_s = $1",
			snapAt(5, 90).ScrapedAt.Unix()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if _, err := b.Retain(ctx); err != nil {
		t.Fatal(err)
	}
	if !exists() {
		t.Fatal("retention removed a version no rollup has: its 90 % is lost to history")
	}
	last := save(t, a, "default", time.Now().Add(-time.Minute).UTC(), 6)
	eventually(t, 5*time.Second, "the version in a's window", func() bool {
		ws, err := a.Windows(ctx, "default", "session", 0)
		return err == nil && len(ws) == 1 && ws[0].PeakPercent == 90
	})
	eventually(t, 5*time.Second, "a's rollup stored with it", func() bool {
		_, through, err := a.StoredRollup(ctx, "default")
		return err == nil && through >= mustSeq(t, a, last.Version.ID)
	})
	if _, err := b.Retain(ctx); err != nil {
		t.Fatal(err)
	}
	if exists() {
		t.Error("the version is still stored after a stored rollup took it in")
	}
	eventually(t, 5*time.Second, "the two recent versions left on a", func() bool { return a.Count("default") == 2 })
	for name, s := range map[string]*Store{"a": a, "b": b} {
		eventually(t, 5*time.Second, name+"'s window with the 90 %", func() bool {
			ws, err := s.Windows(ctx, "default", "session", 0)
			return err == nil && len(ws) == 1 && ws[0].PeakPercent == 90
		})
	}
}
