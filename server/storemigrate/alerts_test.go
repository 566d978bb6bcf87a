package storemigrate_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/server/alert"
	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/server/store/storetest"
	"github.com/claude-usage/widget/server/storemigrate"
)

// sink records the alerts an engine fires.
type sink struct {
	mu  sync.Mutex
	got []alert.Alert
}

func (s *sink) Enqueue(_ context.Context, a alert.Alert) error {
	s.mu.Lock()
	s.got = append(s.got, a)
	s.mu.Unlock()
	return nil
}

func (s *sink) thresholds() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, a := range s.got {
		out = append(out, a.Threshold)
	}
	return out
}

func evaluate(t *testing.T, src alert.Source, state store.AlertStore) *sink {
	t.Helper()
	out := &sink{}
	e, err := alert.NewEngine(context.Background(), alert.EngineConfig{Source: src, State: state, Sink: out,
		Kinds: []alert.Kind{alert.KindThreshold}})
	if err != nil {
		t.Fatal(err)
	}
	e.EvaluateAccount(context.Background(), "default")
	return out
}

// TestCopyKeepsSentAlerts: the file store sent a threshold alert, but
// the disk filled before the engine's state document recorded it (the
// claim is written first, so that an alert is never sent twice). The
// copy carries the claim: the engine on the database does not send the
// alert again. Without the claims it did.
func TestCopyKeepsSentAlerts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	ffs := testutil.NewFaultFS(store.OSFS())
	fs, err := store.Open(ctx, store.Options{Dir: dir, Logger: quiet, FS: ffs})
	if err != nil {
		t.Fatal(err)
	}
	sn := storetest.Snap("default", time.Now().Add(-time.Minute).UTC(), 92)
	if _, err := fs.Save(ctx, store.SaveRequest{Snapshot: sn}); err != nil {
		t.Fatal(err)
	}
	ffs.Add(&testutil.Fault{Op: "Rename", Path: store.AlertStateFile, Err: syscall.ENOSPC, Times: -1})
	sent := evaluate(t, fs, fs).thresholds()
	if len(sent) != 1 || sent[0] != 90 {
		t.Fatalf("the file store's engine sent %v, want the 90 %% alert", sent)
	}
	if raw, err := fs.AlertState(ctx); err != nil || raw != nil {
		t.Fatalf("alert state on the file store = %s, %v; want none (its write failed)", raw, err)
	}
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}

	dsn := pg.DSN(pg.NewDatabase(t))
	var out bytes.Buffer
	if err := storemigrate.Copy(ctx, storemigrate.Options{From: "file", DataDir: dir, To: dsn}, &out, quiet); err != nil {
		t.Fatalf("Copy: %v\n%s", err, out.String())
	}
	if want := "alerts: sent alert ids: 2 in the file store"; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
	s := openPG(t, dsn)
	if again := evaluate(t, s, s).thresholds(); len(again) != 0 {
		t.Errorf("after migrating, the engine on the database sent %v again", again)
	}
}

// TestCopyAgainKeepsWhatTheServerDid: after a copy the server on the
// database sent the queued delivery and a browser unsubscribed; running
// the copy again (by mistake, or to be sure) brings neither back.
func TestCopyAgainKeepsWhatTheServerDid(t *testing.T) {
	t.Parallel()
	dir, _ := fileStore(t)
	dsn := pg.DSN(pg.NewDatabase(t))
	ctx := context.Background()
	var out bytes.Buffer
	opts := storemigrate.Options{From: "file", DataDir: dir, To: dsn}
	if err := storemigrate.Copy(ctx, opts, &out, quiet); err != nil {
		t.Fatalf("Copy: %v\n%s", err, out.String())
	}
	s := openPG(t, dsn)
	if err := s.RemoveDelivery(ctx, "webhook", "d1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.DeletePushSubscription(ctx, "https://push.example/1"); err != nil || !ok {
		t.Fatalf("DeletePushSubscription = %v, %v", ok, err)
	}
	out.Reset()
	if err := storemigrate.Copy(ctx, opts, &out, quiet); err != nil {
		t.Fatalf("second Copy: %v\n%s", err, out.String())
	}
	if q, err := s.Deliveries(ctx, "webhook"); err != nil || len(q) != 0 {
		t.Errorf("queue after copying again = %+v, %v; want the sent delivery not back", q, err)
	}
	if subs, err := s.PushSubscriptions(ctx); err != nil || len(subs) != 0 {
		t.Errorf("subscriptions after copying again = %+v, %v; want the removed one not back", subs, err)
	}
	if want := "alerts: queued webhook deliveries: 1 in the file store; "; !strings.Contains(out.String(), want) ||
		!strings.Contains(out.String(), "the database's own kept") {
		t.Errorf("second run output:\n%s", out.String())
	}
}
