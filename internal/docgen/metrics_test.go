package docgen_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/controller/group"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/controller/machine"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

type metricDoc struct{ typ, labels string }

var (
	docRow      = regexp.MustCompile("^\\| `(homelab_autoscaler_[a-z0-9_]+)` \\| ([a-z]+) \\| ([^|]*) \\|")
	descName    = regexp.MustCompile(`fqName: "([^"]+)"`)
	descLabels  = regexp.MustCompile(`variableLabels: \{([^}]*)\}`)
	nameLiteral = regexp.MustCompile(`"(homelab_autoscaler_[a-z0-9_]+)"`)
)

// TestMetricsDoc keeps docs/metrics.md true: every metric the manager registers is in its
// table with its type and labels, the table lists nothing else, and no metric name written
// anywhere in the code is missing from it.
func TestMetricsDoc(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]metricDoc{}
	for _, line := range strings.Split(string(data), "\n") {
		if m := docRow.FindStringSubmatch(line); m != nil {
			labels := strings.ReplaceAll(strings.TrimSpace(m[3]), "`", "")
			if labels == "-" {
				labels = ""
			}
			documented[m[1]] = metricDoc{typ: m[2], labels: labels}
		}
	}

	registered := map[string]metricDoc{}
	var all []prometheus.Collector
	all = append(all, power.DefaultMetrics.Collectors()...)
	all = append(all, cloudprovider.DefaultMetrics.Collectors()...)
	all = append(all, optimistic.DefaultMetrics.Collectors()...)
	all = append(all, group.Collectors()...)
	all = append(all, machine.Collectors()...)
	for _, c := range all {
		ch := make(chan *prometheus.Desc, 1)
		c.Describe(ch)
		d := (<-ch).String()
		name := descName.FindStringSubmatch(d)[1]
		labels := strings.ReplaceAll(descLabels.FindStringSubmatch(d)[1], ",", ", ")
		registered[name] = metricDoc{typ: typeOf(t, c), labels: labels}
	}

	for name, want := range registered {
		got, ok := documented[name]
		switch {
		case !ok:
			t.Errorf("docs/metrics.md does not list %s (%s, labels %s)", name, want.typ, want.labels)
		case got != want:
			t.Errorf("docs/metrics.md lists %s as %s with labels %q; it is a %s with labels %q", name, got.typ, got.labels, want.typ, want.labels)
		}
	}
	for name := range documented {
		if _, ok := registered[name]; !ok {
			t.Errorf("docs/metrics.md lists %s, which the code does not register", name)
		}
	}

	// A metric defined outside the packages above is caught by its name.
	err = filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path) //nolint:gosec // walking the repository's own files
		if err != nil {
			return err
		}
		for _, m := range nameLiteral.FindAllStringSubmatch(string(src), -1) {
			if _, ok := documented[m[1]]; !ok {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s defines %s, which docs/metrics.md does not list", rel, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func typeOf(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	switch c.(type) {
	// Only vectors: the interfaces of single metrics overlap (a Gauge is also a Counter).
	case *prometheus.CounterVec:
		return "counter"
	case *prometheus.GaugeVec:
		return "gauge"
	case *prometheus.HistogramVec:
		return "histogram"
	case *prometheus.SummaryVec:
		return "summary"
	}
	// A single metric says its type by the field its written form fills.
	if m, ok := c.(prometheus.Metric); ok {
		var out dto.Metric
		if err := m.Write(&out); err != nil {
			t.Fatal(err)
		}
		switch {
		case out.Counter != nil:
			return "counter"
		case out.Gauge != nil:
			return "gauge"
		case out.Histogram != nil:
			return "histogram"
		case out.Summary != nil:
			return "summary"
		}
	}
	t.Fatalf("collector type %T: teach this test its Prometheus type", c)
	return ""
}
