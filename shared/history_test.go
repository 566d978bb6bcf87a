package shared

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	since := at("2026-11-28T00:00:00Z")
	until := since.Add(4 * time.Hour)
	sample := func(min int, v float64) SeriesPoint {
		return SeriesPoint{At: since.Add(time.Duration(min) * time.Minute), PercentUsed: v}
	}
	for _, tc := range []struct {
		name     string
		samples  []SeriesPoint
		n        int
		wantStep time.Duration
		want     []SeriesPoint
	}{
		{"empty", nil, 4, time.Hour, nil},
		{"highest per bucket, any order", []SeriesPoint{sample(70, 12), sample(10, 5), sample(65, 30), sample(59, 7)}, 4, time.Hour,
			[]SeriesPoint{{since, 7}, {since.Add(time.Hour), 30}}},
		{"outside the range left out", []SeriesPoint{sample(-1, 99), sample(240, 99), sample(239, 1)}, 4, time.Hour,
			[]SeriesPoint{{since.Add(3 * time.Hour), 1}}},
		{"one bucket", []SeriesPoint{sample(1, 3), sample(200, 4)}, 1, 4 * time.Hour, []SeriesPoint{{since, 4}}},
		{"no buckets asked", []SeriesPoint{sample(1, 3)}, 0, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step, got := Bucket(tc.samples, since, until, tc.n)
			if step != tc.wantStep {
				t.Errorf("step = %v, want %v", step, tc.wantStep)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if !got[i].At.Equal(tc.want[i].At) || got[i].PercentUsed != tc.want[i].PercentUsed {
					t.Errorf("point %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
	if step, got := Bucket([]SeriesPoint{sample(1, 1)}, until, since, 4); step != 0 || got != nil {
		t.Errorf("since after until gave %v %v", step, got)
	}
}
