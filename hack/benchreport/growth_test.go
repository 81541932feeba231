package main

import (
	"strings"
	"testing"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		a, b float64
		want string
	}{
		{10, 12, "flat"},
		{10, 19, "flat"},
		{10, 21, "linear"},
		{10, 100, "linear"},
		{10, 140, "linear"},
		{10, 150, "worse than linear"},
		{0, 0, "flat"},
		{0, 3, "worse than linear (from zero)"},
		{10, 5, "flat"},
	} {
		if got, _ := classify(c.a, c.b, 1000, 10000); got != c.want {
			t.Errorf("classify(%g, %g) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}

func TestGrowthReadsOneThousandAndTenThousand(t *testing.T) {
	r := &report{Results: []perf.Result{
		{Size: 100, Rest: perf.Resources{RSSMiB: 40}},
		{Size: 1000, Rest: perf.Resources{RSSMiB: 60}},
		{Size: 5000, Rest: perf.Resources{RSSMiB: 150}},
		{Size: 10000, Rest: perf.Resources{RSSMiB: 300}},
	}}
	got := r.growth("RSS at rest", "MiB", func(res perf.Result) (float64, bool) { return res.Rest.RSSMiB, true })
	want := "RSS at rest grows from 60 MiB at 1,000 machines to 300 MiB at 10,000 (×5.00): linear."
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestGrowthSaysWhichSizesItRead(t *testing.T) {
	r := &report{Results: []perf.Result{{Size: 10}, {Size: 100, Rest: perf.Resources{RSSMiB: 1}}}}
	got := r.growth("RSS at rest", "MiB", func(res perf.Result) (float64, bool) { return res.Rest.RSSMiB, true })
	if !strings.Contains(got, "at 10 machines") || !strings.Contains(got, "were not both measured") {
		t.Errorf("got %q", got)
	}
	one := &report{Results: []perf.Result{{Size: 10}}}
	if got := one.growth("x", "", func(perf.Result) (float64, bool) { return 1, true }); got != "x: needs two fleet sizes." {
		t.Errorf("one size: got %q", got)
	}
}

func TestParseTop(t *testing.T) {
	out := `File: homelab-autoscaler
Type: inuse_space
Showing nodes accounting for 30MB, 60.00% of 50MB total
Showing top 3 nodes out of 120
      flat  flat%   sum%        cum   cum%
      15MB 30.00% 30.00%       15MB 30.00%  k8s.io/apimachinery/pkg/runtime.(*Unstructured).DeepCopy
      10MB 20.00% 50.00%       12MB 24.00%  encoding/json.(*decodeState).object
       5MB 10.00% 60.00%        5MB 10.00%  reflect.New
`
	got := parseTop(out)
	if len(got) != 3 {
		t.Fatalf("got %d rows: %+v", len(got), got)
	}
	if got[0].Func != "k8s.io/apimachinery/pkg/runtime.(*Unstructured).DeepCopy" || got[0].Flat != "15MB" || got[0].Percent != 30 {
		t.Errorf("first row: %+v", got[0])
	}
	if got[2].Func != "reflect.New" {
		t.Errorf("last row: %+v", got[2])
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{10: "10", 1000: "1,000", 10000: "10,000", 123456: "123,456"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
