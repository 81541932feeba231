package main

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/plot"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/svgtext"
)

func ms(v float64) perf.Spread { return perf.Spread{Median: v, Min: v, Max: v} }

// fixture is a report of two fleet sizes, one of whose reads took no measurable time.
func fixture() *report {
	result := func(size int, read float64) perf.Result {
		return perf.Result{
			Size: size,
			Reads: []perf.Latency{
				{Call: "NodeGroups", Calls: 100, P50: ms(read / 2), P99: ms(read)},
				{Call: "NodeGroupNodes", Calls: 100, P50: ms(0), P99: ms(0)},
			},
			Writes: []perf.Latency{
				{Call: "IncreaseSize", Callers: 1, P99: ms(20)},
				{Call: "IncreaseSize", Callers: 8, P99: ms(300)},
				{Call: "DeleteNodes", Callers: 1, P99: ms(25)},
				{Call: "DeleteNodes", Callers: 8, P99: ms(280)},
			},
			ScaleUps: []perf.ScaleUp{
				{N: 1, AllPowerOn: ms(0.02), AllReady: ms(2.05)},
				{N: 10, AllPowerOn: ms(0.08), AllReady: ms(2.3)},
			},
			Burst: perf.Burst{ObservedP50: 0.2, ObservedP99: 1.5, ObservedMax: 2.4},
		}
	}
	return &report{Reps: 1, Results: []perf.Result{result(10, 0.6), result(5000, 5.8)}}
}

func svgTexts(t *testing.T, c chart) map[string]bool {
	t.Helper()
	var b bytes.Buffer
	if err := c.write(&b, formatSVG); err != nil {
		t.Fatal(err)
	}
	texts, err := svgtext.Texts(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return texts
}

func TestChartsSayWhatTheyShow(t *testing.T) {
	r := fixture()
	for _, tc := range []struct {
		c    chart
		want []string
	}{
		{r.readChart(), []string{
			"Read RPC p99 latency by fleet size", "fleet size (machines)", "p99 latency (ms, log scale)",
			"NodeGroups", "NodeGroupNodes", "target 50 ms", "10", "5000", "0.001", "0.1", "1", "10", "100",
		}},
		{r.writeChart(), []string{
			"Write RPC p99 latency by concurrent callers", "concurrent callers on one connection",
			"IncreaseSize, 10 machines", "DeleteNodes, 10 machines", "IncreaseSize, 5000 machines", "DeleteNodes, 5000 machines",
			"target 250 ms", "1", "8", "10", "20", "50", "100", "200", "500", "1000",
		}},
		{r.scaleUpChart(), []string{
			"Scale-up: time from IncreaseSize(+N) returning to power-on and Ready", "N (machines powered on)", "seconds after IncreaseSize returned",
			"all power-on, 10 machines", "all Ready, 10 machines", "all power-on, 5000 machines", "all Ready, 5000 machines",
			"power-on target 1 s", "0", "1", "2",
		}},
		{r.burstChart(), []string{
			"Burst of 1,000 spec changes: time until observedGeneration", "seconds after the spec write",
			"observedGeneration p50", "observedGeneration p99", "observedGeneration max", "p99 target 5 s", "0", "5",
		}},
	} {
		texts := svgTexts(t, tc.c)
		for _, want := range tc.want {
			if !texts[want] {
				t.Errorf("chart %q has no text %q; it has %v", tc.c.title, want, texts)
			}
		}
	}
}

func TestChartSVGNamesFallbackFonts(t *testing.T) {
	var b bytes.Buffer
	if err := fixture().burstChart().write(&b, formatSVG); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "font-family:'Liberation Sans',Arial,Helvetica,sans-serif;") || strings.Contains(b.String(), "font-family:Liberation Sans;") {
		t.Errorf("the SVG's texts do not fall back to a sans-serif: %.600s", b.String())
	}
}

func TestChartPNG(t *testing.T) {
	var b bytes.Buffer
	if err := fixture().readChart().write(&b, formatPNG); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatalf("the PNG does not decode: %v", err)
	}
	// 10 by 5 inches at 96 dots per inch.
	if bounds := img.Bounds(); bounds.Dx() != 960 || bounds.Dy() != 480 {
		t.Errorf("the PNG is %v", bounds)
	}
}

func TestChartWithoutPoints(t *testing.T) {
	texts := svgTexts(t, (&report{}).readChart())
	if !texts["Read RPC p99 latency by fleet size"] || !texts["target 50 ms"] {
		t.Errorf("an empty report's chart: %v", texts)
	}
}

func TestChartBadInput(t *testing.T) {
	for _, bad := range []point{{10, math.NaN()}, {math.Inf(1), 2}} {
		c := chart{title: "bad", target: 5, targetLabel: "target", series: []series{{name: "broken", points: []point{{1, 2}, bad}}}}
		if err := c.write(&bytes.Buffer{}, formatSVG); err == nil || !strings.Contains(err.Error(), `chart "bad": series "broken": the point`) {
			t.Errorf("the point %v: %v", bad, err)
		}
	}
	if err := fixture().readChart().write(&bytes.Buffer{}, "gif"); err == nil || !strings.Contains(err.Error(), "Read RPC p99 latency by fleet size") {
		t.Errorf("a gif: %v", err)
	}
}

func labels(ticks []plot.Tick) []string {
	var out []string
	for _, t := range ticks {
		if t.Label != "" {
			out = append(out, t.Label)
		}
	}
	return out
}

func TestTicks(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ticker plot.Ticker
		lo, hi float64
		want   []string
	}{
		{"three decades", logTicks{}, -1, 2, []string{"0.1", "1", "10", "100"}},
		{"two decades", logTicks{}, 1, 3, []string{"10", "20", "50", "100", "200", "500", "1000"}},
		{"measured values", valueTicks{1, 5, 8, 32}, -0.1, 1.6, []string{"1", "5", "8", "32"}},
		{"seconds", linearTicks{}, 0, 5.3, []string{"0", "1", "2", "3", "4", "5"}},
		{"below zero", linearTicks{}, -0.3, 3.5, []string{"0", "1", "2", "3"}},
	} {
		if got := labels(tc.ticker.Ticks(tc.lo, tc.hi)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: labels %v, want %v", tc.name, got, tc.want)
		}
	}
	// A range too narrow for its magnitude still ends.
	if n := len(linearTicks{}.Ticks(1e20, 1e20+1)); n > 21 {
		t.Errorf("a narrow range far from zero has %d ticks", n)
	}
	// Unlabelled ticks mark the other multiples of each power of ten.
	if n := len(logTicks{}.Ticks(0, 1)); n != 10 {
		t.Errorf("one decade has %d ticks, want 10", n)
	}
}

func TestRenderFromResults(t *testing.T) {
	dir := t.TempDir()
	assets := filepath.Join(dir, "performance")
	if err := os.Mkdir(assets, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(fixture())
	if err != nil {
		t.Fatal(err)
	}
	from := filepath.Join(assets, "results.json")
	if err := os.WriteFile(from, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "performance.md")
	if err := render(from, out, assets); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"read-p99.svg", "write-p99.svg", "scale-up.svg", "observed-gen.svg"} {
		if !strings.Contains(string(md), "](performance/"+name+")") {
			t.Errorf("the report does not show %s", name)
		}
		svg, err := os.ReadFile(filepath.Join(assets, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svgtext.Texts(svg); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !strings.Contains(string(md), "`make bench-report` rewrites this") {
		t.Error("the report does not say how to render it again")
	}
}

func TestRenderBadInput(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	if err := render(missing, filepath.Join(dir, "out.md"), dir); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("a missing results file: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := render(bad, filepath.Join(dir, "out.md"), dir); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("a broken results file: %v", err)
	}
}
