package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsAreContiguousAndOrdered(t *testing.T) {
	prevHi := uint64(0)
	for i := 0; i < numBuckets; i++ {
		lo, hi := bucketBounds(i)
		if i > 0 && lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d,%d]: bucketOf gives %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		prevHi = hi
	}
	// The largest time.Duration must fit.
	if b := bucketOf(1<<63 - 1); b >= numBuckets {
		t.Fatalf("max duration lands in bucket %d of %d", b, numBuckets)
	}
}

// exactRank is the nearest-rank percentile of sorted samples.
func exactRank(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	r := int(q*float64(n) + 0.999999999)
	r = min(max(r, 1), n)
	return sorted[r-1]
}

func TestPercentileSmallValuesAreExact(t *testing.T) {
	h := NewHistogram()
	for v := 1; v <= 100; v++ {
		h.Record(time.Duration(v))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.01, 1}, {0.5, 50}, {0.9, 90}, {0.99, 99}, {1, 100}} {
		if got := h.Percentile(c.q); got != c.want {
			t.Errorf("p%g = %d, want %d", c.q*100, got, c.want)
		}
	}
	if h.Max() != 100 || h.Count() != 100 {
		t.Errorf("max %d count %d, want 100 100", h.Max(), h.Count())
	}
}

func TestPercentileWithinBucketPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var samples []time.Duration
	h := NewHistogram()
	for range 50000 {
		// Log-uniform between 20 µs and 50 ms, like request latencies.
		v := time.Duration(20e3 * math.Pow(2500, rng.Float64()))
		samples = append(samples, v)
		h.Record(v)
	}
	slices.Sort(samples)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := exactRank(samples, q)
		got := h.Percentile(q)
		if diff := float64(got-want) / float64(want); diff > 1.0/subCount || diff < -1.0/subCount {
			t.Errorf("p%g = %v, exact %v: off by %.2f%%", q*100, got, want, diff*100)
		}
	}
	if h.Max() != samples[len(samples)-1] {
		t.Errorf("max %v, want %v", h.Max(), samples[len(samples)-1])
	}
}

func TestMergeEqualsRecordingAll(t *testing.T) {
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	for v := time.Duration(1); v <= 3000; v++ {
		d := v * time.Microsecond
		all.Record(d)
		if v%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(b)
	for _, q := range []float64{0.5, 0.9, 0.99} {
		if a.Percentile(q) != all.Percentile(q) {
			t.Errorf("p%g merged %v, all %v", q*100, a.Percentile(q), all.Percentile(q))
		}
	}
	if a.Count() != 3000 || a.Max() != 3*time.Millisecond {
		t.Errorf("count %d max %v", a.Count(), a.Max())
	}
	if p := a.Percentile(0.5); p < 1490*time.Microsecond || p > 1510*time.Microsecond {
		t.Errorf("p50 of 1..3000 µs = %v, want about 1.5 ms", p)
	}
}

func TestEmptyHistogram(t *testing.T) {
	h := NewHistogram()
	if h.Percentile(0.5) != 0 || h.Max() != 0 {
		t.Errorf("empty histogram: p50 %v max %v", h.Percentile(0.5), h.Max())
	}
}
