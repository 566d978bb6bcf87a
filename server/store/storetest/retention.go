package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/claude-usage/widget/server/store"
)

const day = 24 * time.Hour

func repeat(d, step time.Duration, n int) []time.Duration {
	var out []time.Duration
	for i := range n {
		out = append(out, d+time.Duration(i)*step)
	}
	return out
}

// testRetention stores versions of the given ages (in arrival order),
// runs retention with 5 versions and 7 days, and checks that the newest
// keep versions are left. The exact 7-day boundary is the file store's
// own test (it fakes the clock); here every age is an hour from it.
func testRetention(t *testing.T, b Backend) {
	cases := []struct {
		name string
		ages []time.Duration
		keep int
	}{
		{"fewer than N, all old", repeat(30*day, time.Hour, 3), 3},
		{"N wins over days", repeat(30*day, time.Hour, 20), 5},
		{"days win over N", append(repeat(time.Hour, time.Hour, 12), repeat(10*day, time.Hour, 8)...), 12},
		{"few recent, N fills up with the newest old ones", append(repeat(time.Hour, time.Hour, 3), repeat(10*day, time.Hour, 10)...), 5},
		{"an hour inside D days is kept", append(append(repeat(time.Hour, time.Hour, 5), 7*day-time.Hour), repeat(8*day, time.Hour, 5)...), 6},
		{"late arrival: order is by scrapedAt, not arrival", append(repeat(9*day, time.Hour, 6), repeat(40*day, time.Hour, 4)...), 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t, b, b.New(t), Options{RetentionVersions: 5, RetentionDays: 7})
			now := time.Now()
			var times []time.Time
			for i, a := range tc.ages {
				at := now.Add(-a).UTC()
				times = append(times, at)
				mustSave(t, s, Snap("default", at, float64(i%100)))
			}
			b.Retain(t, s)
			slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
			want := times[len(times)-tc.keep:]
			if got := s.Count("default"); got != tc.keep {
				t.Fatalf("Count = %d, want %d", got, tc.keep)
			}
			vs, err := s.History(context.Background(), "default", time.Time{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []time.Time
			for _, v := range vs {
				got = append(got, v.Snapshot.ScrapedAt)
			}
			if !slices.EqualFunc(got, want, time.Time.Equal) {
				t.Errorf("kept %v, want the newest %v", got, want)
			}
			if st := s.Status(); len(st.Accounts) != 1 || st.Accounts[0].Count != tc.keep {
				t.Errorf("Status().Accounts = %+v, want %d versions", st.Accounts, tc.keep)
			}
		})
	}
}

// testRetentionForgetsKeys: a removed version's idempotency key is gone
// with it, so its replay stores it again.
func testRetentionForgetsKeys(t *testing.T, b Backend) {
	s := open(t, b, b.New(t), Options{RetentionVersions: 2, RetentionDays: 1})
	ctx := context.Background()
	now := time.Now()
	old := store.SaveRequest{Snapshot: Snap("default", now.Add(-10*day), 1), IdempotencyKey: "old", BodyHash: "h"}
	if _, err := s.Save(ctx, old); err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, Snap("default", now.Add(-9*day), 2))
	b.Retain(t, s)
	if got, want := s.Count("default"), 2; got != want {
		t.Fatalf("retention removed versions while only N existed: Count = %d, want %d", got, want)
	}
	mustSave(t, s, Snap("default", now.Add(-8*day), 3))
	b.Retain(t, s)
	if got, want := s.Count("default"), 2; got != want {
		t.Errorf("Count = %d, want %d", got, want)
	}
	res, err := s.Save(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed {
		t.Error("the key of a removed version still replays")
	}
}
