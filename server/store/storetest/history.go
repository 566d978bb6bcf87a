package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/claude-usage/widget/shared"
)

// testSeries: the readings of the kept versions, oldest first, within
// [since, until); errors as the contract gives them.
func testSeries(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := context.Background()
	if _, err := s.Series(ctx, "default", "session", T0, T0.Add(time.Hour)); CodeOf(err) != shared.CodeNoData {
		t.Errorf("Series on an empty store = %v, want NO_DATA", err)
	}
	for i := range 4 {
		mustSave(t, s, Snap("default", T0.Add(time.Duration(i)*10*time.Minute), float64(10*(i+1))))
	}
	cases := []struct {
		name         string
		meter        string
		since, until time.Time
		want         []float64
	}{
		{"all", "session", T0.Add(-time.Hour), T0.Add(time.Hour), []float64{10, 20, 30, 40}},
		{"since inclusive, until exclusive", "session", T0.Add(10 * time.Minute), T0.Add(30 * time.Minute), []float64{20, 30}},
		{"another meter", "weekly_all", T0, T0.Add(time.Hour), []float64{5, 10, 15, 20}},
		{"a meter never seen", "weekly_opus", T0, T0.Add(time.Hour), nil},
		{"since after until", "session", T0.Add(time.Hour), T0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Series(ctx, "default", tc.meter, tc.since, tc.until)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Error("Series returned nil, want an empty slice")
			}
			var pcts []float64
			for _, p := range got {
				pcts = append(pcts, p.PercentUsed)
			}
			if len(pcts) != len(tc.want) {
				t.Fatalf("Series = %v, want %v", got, tc.want)
			}
			for i := range pcts {
				if pcts[i] != tc.want[i] {
					t.Errorf("point %d = %v, want %v", i, pcts[i], tc.want[i])
				}
			}
		})
	}
	if _, err := s.Series(ctx, "default", "Bad Meter", T0, T0.Add(time.Hour)); CodeOf(err) != shared.CodeInvalidQuery {
		t.Errorf("bad meter = %v, want INVALID_QUERY", err)
	}
}

// testHistoryOutlivesRetention: versions retention removed still answer
// as hourly maxima and finished windows, after a restart too.
func testHistoryOutlivesRetention(t *testing.T, b Backend) {
	loc := b.New(t)
	o := Options{RetentionVersions: 1, RetentionDays: 1}
	s := open(t, b, loc, o)
	ctx := context.Background()
	old := time.Now().Add(-10 * day).Truncate(time.Hour).UTC()
	reset := old.Add(2 * time.Hour)
	for i, pct := range []float64{20, 60, 40} { // one window: peak 60, final 40
		sn := Snap("default", old.Add(time.Duration(i)*10*time.Minute), pct)
		sn.Meters[0].ResetsAt = &reset
		mustSave(t, s, sn)
	}
	mustSave(t, s, Snap("default", time.Now().Add(-time.Minute).UTC(), 5))
	b.Retain(t, s)
	if got := s.Count("default"); got != 1 {
		t.Fatalf("Count after retention = %d, want 1", got)
	}
	check := func(t *testing.T, label string) {
		pts, err := s.Series(ctx, "default", "session", old.Add(-time.Hour), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != 2 || !pts[0].At.Equal(old) || pts[0].PercentUsed != 60 || pts[1].PercentUsed != 5 {
			t.Errorf("%s: Series = %+v, want the hour's maximum 60 at %s, then the kept version's 5", label, pts, old)
		}
		ws, err := s.Windows(ctx, "default", "session", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != 1 || ws[0].PeakPercent != 60 || ws[0].FinalPercent != 40 || ws[0].Samples != 3 || !ws[0].ResetsAt.Equal(reset) {
			t.Errorf("%s: Windows = %+v, want one with peak 60, final 40, 3 samples", label, ws)
		}
	}
	check(t, "after retention")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, b, loc, o)
	check(t, "after a restart")
}
