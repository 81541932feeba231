package perf

import (
	"math"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Percentile is the p-th quantile (0..1) of the durations in milliseconds, nearest rank.
func Percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return float64(s[max(0, min(len(s)-1, i))].Microseconds()) / 1000
}

// Median of the values.
func Median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Clone(values)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func minOf(v []float64) float64 { return slices.Min(v) }
func maxOf(v []float64) float64 { return slices.Max(v) }

// HistogramQuantile estimates the q-th quantile of the observations between two snapshots of a
// Prometheus histogram, interpolating linearly inside the bucket, as PromQL's
// histogram_quantile does. It returns 0 when nothing was observed in between.
func HistogramQuantile(q float64, before, after *dto.Histogram) float64 {
	prev := map[float64]uint64{}
	if before != nil {
		for _, b := range before.GetBucket() {
			prev[b.GetUpperBound()] = b.GetCumulativeCount()
		}
	}
	total := after.GetSampleCount() - before.GetSampleCount()
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	lower, lowerCount := 0.0, 0.0
	for _, b := range after.GetBucket() {
		count := float64(b.GetCumulativeCount() - prev[b.GetUpperBound()])
		if count >= rank {
			if count == lowerCount {
				return b.GetUpperBound()
			}
			return lower + (b.GetUpperBound()-lower)*(rank-lowerCount)/(count-lowerCount)
		}
		lower, lowerCount = b.GetUpperBound(), count
	}
	// Past the largest finite bucket: the bound is all that is known.
	return lower
}
