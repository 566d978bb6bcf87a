package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/claude-usage/widget/internal/testutil"
	"github.com/claude-usage/widget/shared"
)

// idPattern is the shape of a version id (an xid).
var idPattern = regexp.MustCompile(`^[0-9a-v]{20}$`)

func TestSaveAndRead(t *testing.T) {
	t.Parallel()
	s := openTest(t, t.TempDir(), nil)
	ctx := context.Background()

	if _, err := s.Latest(ctx, "default"); codeOf(err) != shared.CodeNoData {
		t.Fatalf("Latest on an empty store: got %v, want NO_DATA", err)
	}
	var saved []Version
	for i := 0; i < 5; i++ {
		v := mustSave(t, s, snap("default", t0.Add(time.Duration(i)*10*time.Minute), float64(10*i)))
		if got, want := v.Number, i+1; got != want {
			t.Errorf("save %d: Number = %d, want %d", i, got, want)
		}
		if got, want := v.Total, i+1; got != want {
			t.Errorf("save %d: Total = %d, want %d", i, got, want)
		}
		if !idPattern.MatchString(v.ID) {
			t.Errorf("save %d: id %q is not an xid", i, v.ID)
		}
		saved = append(saved, v)
	}
	latest, err := s.Latest(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := latest.ID, saved[4].ID; got != want {
		t.Errorf("Latest id = %s, want %s", got, want)
	}
	if got, want := latest.Snapshot.Meters[0].PercentUsed, 40.0; got != want {
		t.Errorf("Latest session percent = %v, want %v", got, want)
	}
	if got, want := s.Count("default"), 5; got != want {
		t.Errorf("Count = %d, want %d", got, want)
	}
	if got, want := s.Count("nobody"), 0; got != want {
		t.Errorf("Count(nobody) = %d, want %d", got, want)
	}

	t.Run("ByNumber", func(t *testing.T) {
		cases := []struct {
			name    string
			n       int
			wantIdx int
			wantErr string
		}{
			{"oldest", 1, 0, ""},
			{"third", 3, 2, ""},
			{"newest", 5, 4, ""},
			{"minus one is latest", -1, 4, ""},
			{"minus five is oldest", -5, 0, ""},
			{"zero", 0, 0, "version 0 not found; valid: 1..5 or -5..-1"},
			{"past the end", 6, 0, "version 6 not found; valid: 1..5 or -5..-1"},
			{"before the start", -6, 0, "version -6 not found; valid: 1..5 or -5..-1"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				v, err := s.ByNumber(ctx, "default", tc.n)
				if tc.wantErr != "" {
					se, ok := err.(*shared.Error)
					if !ok || se.Code != shared.CodeVersionNotFound {
						t.Fatalf("ByNumber(%d) error = %v, want VERSION_NOT_FOUND", tc.n, err)
					}
					if got := se.Message; got != tc.wantErr {
						t.Errorf("message = %q, want %q", got, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got, want := v.ID, saved[tc.wantIdx].ID; got != want {
					t.Errorf("ByNumber(%d) id = %s, want %s", tc.n, got, want)
				}
				if got, want := v.Number, tc.wantIdx+1; got != want {
					t.Errorf("ByNumber(%d) Number = %d, want %d", tc.n, got, want)
				}
			})
		}
	})

	t.Run("History", func(t *testing.T) {
		cases := []struct {
			name  string
			since time.Time
			limit int
			want  []int // indexes into saved
		}{
			{"all", time.Time{}, 0, []int{0, 1, 2, 3, 4}},
			{"limit keeps the newest", time.Time{}, 2, []int{3, 4}},
			{"since is inclusive", t0.Add(20 * time.Minute), 0, []int{2, 3, 4}},
			{"since between versions", t0.Add(25 * time.Minute), 0, []int{3, 4}},
			{"since and limit", t0.Add(10 * time.Minute), 3, []int{2, 3, 4}},
			{"since after all", t0.Add(time.Hour), 0, nil},
			{"limit larger than all", time.Time{}, 100, []int{0, 1, 2, 3, 4}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				vs, err := s.History(ctx, "default", tc.since, tc.limit)
				if err != nil {
					t.Fatal(err)
				}
				var got []int
				for _, v := range vs {
					got = append(got, v.Number-1)
					if v.ID != saved[v.Number-1].ID {
						t.Errorf("History version %d has id %s, want %s", v.Number, v.ID, saved[v.Number-1].ID)
					}
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("History(%v, %d) = %v, want %v", tc.since, tc.limit, got, tc.want)
				}
			})
		}
	})

	t.Run("returned snapshots are copies", func(t *testing.T) {
		v, _ := s.Latest(ctx, "default")
		v.Snapshot.Meters[0].PercentUsed = 99
		*v.Snapshot.Meters[0].ResetsAt = time.Time{}
		again, _ := s.Latest(ctx, "default")
		if got, want := again.Snapshot.Meters[0].PercentUsed, 40.0; got != want {
			t.Errorf("after changing a returned copy, stored percent = %v, want %v", got, want)
		}
		if again.Snapshot.Meters[0].ResetsAt.IsZero() {
			t.Error("changing a returned ResetsAt changed the stored one")
		}
	})
}

func TestNoDataAndBadAccount(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	ctx := context.Background()
	mustSave(t, s, snap("default", t0, 1))

	calls := map[string]func(account string) error{
		"Latest":   func(a string) error { _, err := s.Latest(ctx, a); return err },
		"ByNumber": func(a string) error { _, err := s.ByNumber(ctx, a, 1); return err },
		"Nearest":  func(a string) error { _, err := s.Nearest(ctx, a, t0); return err },
		"History":  func(a string) error { _, err := s.History(ctx, a, time.Time{}, 10); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if got, want := codeOf(call("other")), shared.CodeNoData; got != want {
				t.Errorf("%s(other) code = %s, want %s", name, got, want)
			}
			if got, want := codeOf(call("../etc")), shared.CodeInvalidQuery; got != want {
				t.Errorf("%s(../etc) code = %s, want %s", name, got, want)
			}
		})
	}

	t.Run("Save rejects an account that is not a path segment", func(t *testing.T) {
		for _, account := range []string{"../escape", "a/b", ".hidden", "UPPER"} {
			_, err := s.Save(ctx, SaveRequest{Snapshot: snap(account, t0, 1)})
			if got, want := codeOf(err), shared.CodeValidationFailed; got != want {
				t.Errorf("Save(%q) code = %s, want %s", account, got, want)
			}
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape")); err == nil {
			t.Error("a directory was created outside the data dir")
		}
	})
	t.Run("Save rejects a zero scrapedAt", func(t *testing.T) {
		_, err := s.Save(ctx, SaveRequest{Snapshot: snap("default", time.Time{}, 1)})
		if got, want := codeOf(err), shared.CodeValidationFailed; got != want {
			t.Errorf("code = %s, want %s", got, want)
		}
	})
	t.Run("Save rejects a snapshot that would not load again", func(t *testing.T) {
		sn := snap("default", t0.Add(time.Hour), 1)
		sn.Meters[1].PercentUsed = 140
		_, err := s.Save(ctx, SaveRequest{Snapshot: sn})
		if got, want := codeOf(err), shared.CodeValidationFailed; got != want {
			t.Fatalf("code = %s, want %s (err %v)", got, want, err)
		}
		if got, want := err.(*shared.Error).Field, "meters[1].percentUsed"; got != want {
			t.Errorf("field = %q, want %q", got, want)
		}
		if got, want := s.Count("default"), 1; got != want {
			t.Errorf("Count = %d, want %d", got, want)
		}
	})
	t.Run("empty account reads as default", func(t *testing.T) {
		v, err := s.Latest(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := v.Snapshot.Account, "default"; got != want {
			t.Errorf("account = %q, want %q", got, want)
		}
	})
}

func TestNearest(t *testing.T) {
	t.Parallel()
	s := openTest(t, t.TempDir(), nil)
	ctx := context.Background()
	a := mustSave(t, s, snap("default", t0, 1))                     // 13:50
	b := mustSave(t, s, snap("default", t0.Add(10*time.Minute), 2)) // 14:00
	c1 := mustSave(t, s, snap("default", t0.Add(20*time.Minute), 3))
	c2 := mustSave(t, s, snap("default", t0.Add(20*time.Minute), 4)) // same ScrapedAt, arrived later

	cases := []struct {
		name string
		at   time.Time
		want string
	}{
		{"before all", t0.Add(-time.Hour), a.ID},
		{"exactly the first", t0, a.ID},
		{"between, nearer the older", t0.Add(3 * time.Minute), a.ID},
		{"between, nearer the newer", t0.Add(7 * time.Minute), b.ID},
		{"midway tie goes to the older", t0.Add(5 * time.Minute), a.ID},
		{"exact match", t0.Add(10 * time.Minute), b.ID},
		{"same scrapedAt picks the first arrival", t0.Add(20 * time.Minute), c1.ID},
		{"after all with tied newest picks the first arrival", t0.Add(time.Hour), c1.ID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := s.Nearest(ctx, "default", tc.at)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.ID; got != tc.want {
				t.Errorf("Nearest(%s) = %s (number %d), want %s", tc.at.Format(time.TimeOnly), got, v.Number, tc.want)
			}
		})
	}
	latest, _ := s.Latest(ctx, "default")
	if got, want := latest.ID, c2.ID; got != want {
		t.Errorf("Latest with tied ScrapedAt = %s, want the last arrival %s", got, want)
	}
}

func TestLateSnapshotKeepsLatest(t *testing.T) {
	t.Parallel()
	s := openTest(t, t.TempDir(), nil)
	ctx := context.Background()
	newer := mustSave(t, s, snap("default", t0.Add(time.Hour), 50))
	late := mustSave(t, s, snap("default", t0, 10)) // delivered late from the outbox

	if got, want := late.Number, 1; got != want {
		t.Errorf("late snapshot Number = %d, want %d", got, want)
	}
	if got, want := late.Total, 2; got != want {
		t.Errorf("late snapshot Total = %d, want %d", got, want)
	}
	v, err := s.Latest(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v.ID, newer.ID; got != want {
		t.Errorf("Latest = %s, want the newer snapshot %s", got, want)
	}
	if got, want := v.Number, 2; got != want {
		t.Errorf("Latest Number = %d, want %d", got, want)
	}
	first, _ := s.ByNumber(ctx, "default", 1)
	if got, want := first.ID, late.ID; got != want {
		t.Errorf("version 1 = %s, want the late snapshot %s", got, want)
	}
}

func TestAccounts(t *testing.T) {
	t.Parallel()
	s := openTest(t, t.TempDir(), nil)
	if got := s.Accounts(); len(got) != 0 {
		t.Errorf("Accounts on an empty store = %v, want none", got)
	}
	mustSave(t, s, snap("work@example.com", t0, 1))
	mustSave(t, s, snap("default", t0, 1))
	mustSave(t, s, snap("default", t0.Add(time.Minute), 1))
	if got, want := s.Accounts(), []string{"default", "work@example.com"}; !slices.Equal(got, want) {
		t.Errorf("Accounts = %v, want %v", got, want)
	}
	if got, want := s.Count("work@example.com"), 1; got != want {
		t.Errorf("Count(work) = %d, want %d", got, want)
	}
}

func TestReopenRebuildsTheSameIndex(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	s := openTest(t, dir, nil)
	for i, off := range []int{30, 10, 20, 0, 40, 20} { // out of order, one tie
		sn := snap("default", t0.Add(time.Duration(off)*time.Minute), float64(i))
		sn.ExtractionErrors = map[string]string{"weekly_opus": "not shown"}
		sn.Partial = true
		if _, err := s.Save(ctx, SaveRequest{Snapshot: sn, IdempotencyKey: fmt.Sprintf("key-%d", i), BodyHash: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	mustSave(t, s, snap("second", t0, 5))
	before := map[string][]Version{}
	for _, a := range s.Accounts() {
		before[a], _ = s.History(ctx, a, time.Time{}, 0)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openTest(t, dir, nil)
	if got, want := s2.Accounts(), []string{"default", "second"}; !slices.Equal(got, want) {
		t.Fatalf("Accounts after reopen = %v, want %v", got, want)
	}
	for a, want := range before {
		got, err := s2.History(ctx, a, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("account %s: index after reopen differs\n got: %+v\nwant: %+v", a, got, want)
		}
	}
	// New versions continue the arrival order: a tie with an existing
	// ScrapedAt sorts after the versions stored before the restart.
	v := mustSave(t, s2, snap("default", t0.Add(20*time.Minute), 99))
	if got, want := v.Number, 5; got != want {
		t.Errorf("tie saved after reopen has Number %d, want %d (after both earlier ties)", got, want)
	}
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	s := openTest(t, dir, nil)

	req := SaveRequest{Snapshot: snap("default", t0.Add(time.Hour), 42), IdempotencyKey: "d4k2abc", BodyHash: "sha256:aaa"}
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
		if got, want := s.Count("default"), 1; got != want {
			t.Errorf("Count = %d, want %d", got, want)
		}
	})

	t.Run("replay reports the current number", func(t *testing.T) {
		mustSave(t, s, snap("default", t0, 1)) // older: shifts the keyed version to 2
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
		if got, want := codeOf(err), shared.CodeIdempotencyKeyReused; got != want {
			t.Fatalf("code = %s, want %s (err %v)", got, want, err)
		}
		if got, want := s.Count("default"), 2; got != want {
			t.Errorf("Count = %d, want %d", got, want)
		}
	})

	t.Run("replay after restart", func(t *testing.T) {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2 := openTest(t, dir, nil)
		again, err := s2.Save(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !again.Replayed || again.Version.ID != first.Version.ID {
			t.Errorf("after restart: Replayed=%v id=%s, want true %s", again.Replayed, again.Version.ID, first.Version.ID)
		}
		other := req
		other.BodyHash = "sha256:ccc"
		if _, err := s2.Save(ctx, other); codeOf(err) != shared.CodeIdempotencyKeyReused {
			t.Errorf("after restart, other body: err = %v, want IDEMPOTENCY_KEY_REUSED", err)
		}
		if got, want := len(listVersions(t, dir, "default")), 2; got != want {
			t.Errorf("version files = %d, want %d", got, want)
		}
	})
}

func TestConcurrentSameKeyMakesOneVersion(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	req := SaveRequest{Snapshot: snap("default", t0, 42), IdempotencyKey: "same", BodyHash: "h"}
	const n = 8
	results := make([]SaveResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = s.Save(context.Background(), req)
		}()
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
	if got, want := s.Count("default"), 1; got != want {
		t.Errorf("Count = %d, want %d", got, want)
	}
	if got, want := len(listVersions(t, dir, "default")), 1; got != want {
		t.Errorf("files = %d, want %d", got, want)
	}
}

func TestStatusAfterOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	st := s.Status()
	if !st.Writable || st.WriteErr != nil {
		t.Errorf("Writable = %v (%v), want true", st.Writable, st.WriteErr)
	}
	if st.FreeBytes == 0 {
		t.Error("FreeBytes = 0 on a real disk")
	}
	if got, want := st.Breaker, shared.StateClosed; got != want {
		t.Errorf("Breaker = %v, want %v", got, want)
	}
	abs, _ := filepath.Abs(dir)
	if got, want := st.Dir, abs; got != want {
		t.Errorf("Dir = %q, want %q", got, want)
	}
	if ents, _ := os.ReadDir(dir); countTmp(names(ents)) != 0 {
		t.Errorf("probe file left in %s: %v", dir, names(ents))
	}
}

func names(ents []os.DirEntry) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestSaveAfterClose(t *testing.T) {
	t.Parallel()
	s := openTest(t, t.TempDir(), nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Save(context.Background(), SaveRequest{Snapshot: snap("default", t0, 1)})
	if got, want := codeOf(err), shared.CodeStorageUnavailable; got != want {
		t.Errorf("Save after Close: code = %s, want %s", got, want)
	}
	if got, want := codeOf(s.CheckWritable(context.Background())), shared.CodeStorageUnavailable; got != want {
		t.Errorf("CheckWritable after Close: code = %s, want %s", got, want)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestSaveRecreatesRemovedAccountDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	mustSave(t, s, snap("default", t0, 1))
	if err := os.RemoveAll(filepath.Join(dir, "default")); err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, snap("default", t0.Add(time.Minute), 2))
	if got, want := len(listVersions(t, dir, "default")), 1; got != want {
		t.Errorf("files = %d, want %d", got, want)
	}
}

// TestCloseWaitsForInFlightSave holds a save at its rename, starts Close,
// and checks that Close returns only after the save finished and that the
// save was not cut short.
func TestCloseWaitsForInFlightSave(t *testing.T) {
	t.Parallel()
	bubble(t, func(t *testing.T) {
		dir := t.TempDir()
		ffs := newFaultFS()
		s := openTest(t, dir, func(o *Options) { o.FS = ffs })
		release := make(chan struct{})
		ft := ffs.Add(&testutil.Fault{Op: "Rename", Path: versionsDir, Block: release, Times: 1})

		saveErr := make(chan error, 1)
		go func() {
			_, err := s.Save(context.Background(), SaveRequest{Snapshot: snap("default", t0, 1)})
			saveErr <- err
		}()
		<-ft.Entered
		closed := make(chan struct{})
		go func() {
			_ = s.Close()
			close(closed)
		}()
		synctest.Wait() // Close is waiting for the save
		if _, err := s.Save(context.Background(), SaveRequest{Snapshot: snap("default", t0.Add(time.Minute), 1)}); codeOf(err) != shared.CodeStorageUnavailable {
			t.Errorf("Save while closing = %v, want STORAGE_UNAVAILABLE", err)
		}
		select {
		case <-closed:
			t.Fatal("Close returned while a save was in flight")
		default:
		}
		close(release)
		<-closed
		select {
		case err := <-saveErr:
			if err != nil {
				t.Errorf("in-flight save failed: %v", err)
			}
		default:
			t.Fatal("Close returned before the in-flight save")
		}
		if got, want := len(listVersions(t, dir, "default")), 1; got != want {
			t.Errorf("files = %d, want %d", got, want)
		}
	})
}
