package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/claude-usage/widget/server/store"
	"github.com/claude-usage/widget/shared"
)

func testSaveAndRead(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := context.Background()
	if _, err := s.Latest(ctx, "default"); CodeOf(err) != shared.CodeNoData {
		t.Fatalf("Latest on an empty store: got %v, want NO_DATA", err)
	}
	var saved []store.Version
	for i := range 5 {
		v := mustSave(t, s, Snap("default", T0.Add(time.Duration(i)*10*time.Minute), float64(10*i)))
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
	if got, want := latest.StoredAt, saved[4].StoredAt; !got.Equal(want) {
		t.Errorf("Latest StoredAt = %s, Save returned %s", got, want)
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
					var se *shared.Error
					if !errors.As(err, &se) || se.Code != shared.CodeVersionNotFound {
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
				if got, want := v.Total, 5; got != want {
					t.Errorf("ByNumber(%d) Total = %d, want %d", tc.n, got, want)
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
			{"since is inclusive", T0.Add(20 * time.Minute), 0, []int{2, 3, 4}},
			{"since between versions", T0.Add(25 * time.Minute), 0, []int{3, 4}},
			{"since and limit", T0.Add(10 * time.Minute), 3, []int{2, 3, 4}},
			{"since after all", T0.Add(time.Hour), 0, nil},
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
					if v.Total != 5 {
						t.Errorf("History version %d has Total %d, want 5", v.Number, v.Total)
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

func testNoDataAndBadAccount(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := context.Background()
	mustSave(t, s, Snap("default", T0, 1))

	calls := map[string]func(account string) error{
		"Latest":   func(a string) error { _, err := s.Latest(ctx, a); return err },
		"ByNumber": func(a string) error { _, err := s.ByNumber(ctx, a, 1); return err },
		"Nearest":  func(a string) error { _, err := s.Nearest(ctx, a, T0); return err },
		"History":  func(a string) error { _, err := s.History(ctx, a, time.Time{}, 10); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if got, want := CodeOf(call("other")), shared.CodeNoData; got != want {
				t.Errorf("%s(other) code = %s, want %s", name, got, want)
			}
			if got, want := CodeOf(call("../etc")), shared.CodeInvalidQuery; got != want {
				t.Errorf("%s(../etc) code = %s, want %s", name, got, want)
			}
		})
	}
	t.Run("Save rejects an account that is not a path segment", func(t *testing.T) {
		for _, account := range []string{"../escape", "a/b", ".hidden", "UPPER"} {
			_, err := s.Save(ctx, store.SaveRequest{Snapshot: Snap(account, T0, 1)})
			if got, want := CodeOf(err), shared.CodeValidationFailed; got != want {
				t.Errorf("Save(%q) code = %s, want %s", account, got, want)
			}
		}
	})
	t.Run("Save rejects a zero scrapedAt", func(t *testing.T) {
		_, err := s.Save(ctx, store.SaveRequest{Snapshot: Snap("default", time.Time{}, 1)})
		if got, want := CodeOf(err), shared.CodeValidationFailed; got != want {
			t.Errorf("code = %s, want %s", got, want)
		}
	})
	t.Run("Save rejects a snapshot that would not load again", func(t *testing.T) {
		sn := Snap("default", T0.Add(time.Hour), 1)
		sn.Meters[1].PercentUsed = 140
		_, err := s.Save(ctx, store.SaveRequest{Snapshot: sn})
		var se *shared.Error
		if !errors.As(err, &se) || se.Code != shared.CodeValidationFailed {
			t.Fatalf("err = %v, want VALIDATION_FAILED", err)
		}
		if got, want := se.Field, "meters[1].percentUsed"; got != want {
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

func testNearest(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := context.Background()
	a := mustSave(t, s, Snap("default", T0, 1))
	bb := mustSave(t, s, Snap("default", T0.Add(10*time.Minute), 2))
	c1 := mustSave(t, s, Snap("default", T0.Add(20*time.Minute), 3))
	c2 := mustSave(t, s, Snap("default", T0.Add(20*time.Minute), 4)) // same ScrapedAt, arrived later

	cases := []struct {
		name string
		at   time.Time
		want string
		num  int
	}{
		{"before all", T0.Add(-time.Hour), a.ID, 1},
		{"exactly the first", T0, a.ID, 1},
		{"between, nearer the older", T0.Add(3 * time.Minute), a.ID, 1},
		{"between, nearer the newer", T0.Add(7 * time.Minute), bb.ID, 2},
		{"midway tie goes to the older", T0.Add(5 * time.Minute), a.ID, 1},
		{"exact match", T0.Add(10 * time.Minute), bb.ID, 2},
		{"same scrapedAt picks the first arrival", T0.Add(20 * time.Minute), c1.ID, 3},
		{"after all with tied newest picks the first arrival", T0.Add(time.Hour), c1.ID, 3},
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
			if got := v.Number; got != tc.num {
				t.Errorf("Nearest(%s) Number = %d, want %d", tc.at.Format(time.TimeOnly), got, tc.num)
			}
		})
	}
	latest, _ := s.Latest(ctx, "default")
	if got, want := latest.ID, c2.ID; got != want {
		t.Errorf("Latest with tied ScrapedAt = %s, want the last arrival %s", got, want)
	}
}

func testLateSnapshotKeepsLatest(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := context.Background()
	newer := mustSave(t, s, Snap("default", T0.Add(time.Hour), 50))
	late := mustSave(t, s, Snap("default", T0, 10)) // delivered late from the outbox
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
	if st := s.Status(); len(st.Accounts) != 1 || !st.Accounts[0].Latest.Equal(T0.Add(time.Hour)) {
		t.Errorf("Status().Accounts = %+v, want default with latest %s", st.Accounts, T0.Add(time.Hour))
	}
}

func testAccounts(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	if got := s.Accounts(); len(got) != 0 {
		t.Errorf("Accounts on an empty store = %v, want none", got)
	}
	mustSave(t, s, Snap("work@example.com", T0, 1))
	mustSave(t, s, Snap("default", T0, 1))
	mustSave(t, s, Snap("default", T0.Add(time.Minute), 1))
	if got, want := s.Accounts(), []string{"default", "work@example.com"}; !slices.Equal(got, want) {
		t.Errorf("Accounts = %v, want %v", got, want)
	}
	if got, want := s.Count("work@example.com"), 1; got != want {
		t.Errorf("Count(work) = %d, want %d", got, want)
	}
}

// testNanoseconds: a scrapedAt keeps its nanoseconds, and two versions a
// nanosecond apart keep their order.
func testNanoseconds(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := context.Background()
	at := T0.Add(123456789 * time.Nanosecond)
	second := mustSave(t, s, Snap("default", at.Add(time.Nanosecond), 2))
	first := mustSave(t, s, Snap("default", at, 1))
	if got, want := first.Number, 1; got != want {
		t.Errorf("a nanosecond earlier: Number = %d, want %d", got, want)
	}
	v, err := s.Latest(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v.ID, second.ID; got != want {
		t.Errorf("Latest = %s, want %s", got, want)
	}
	if got, want := v.Snapshot.ScrapedAt, at.Add(time.Nanosecond); !got.Equal(want) {
		t.Errorf("ScrapedAt = %s, want %s", got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
	n, err := s.Nearest(ctx, "default", at)
	if err != nil || n.ID != first.ID {
		t.Errorf("Nearest(exact ns) = %s, %v; want %s", n.ID, err, first.ID)
	}
}
