package deploytest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

var (
	metricRef  = regexp.MustCompile(`\bhomelab_autoscaler_[a-z0-9_]+`)
	metricDecl = regexp.MustCompile(`Name:\s+"(homelab_autoscaler_[a-z0-9_]+)"`)
	recordRef  = regexp.MustCompile(`\bhomelab_autoscaler:[a-z0-9_:]+`)
	recordName = regexp.MustCompile(`^homelab_autoscaler:[a-z0-9_]+:[a-z0-9_:]+$`)
	repairKind = regexp.MustCompile(`homelab_autoscaler_machine_repairs_total\{[^}]*kind="([^"]*)"`)
)

// repairKinds are the values of the repair counter's kind label: an alert selecting another
// would never fire.
var repairKinds = map[string]bool{
	string(infrav1.RepairPowerLost): true, string(infrav1.RepairOutsidePowerOn): true, string(infrav1.RepairAdopted): true,
	string(infrav1.RepairStuckNode): true, string(infrav1.RepairSubstituted): true,
}

// exportedMetrics reads the metric names the code declares, with the series names a histogram
// adds.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(repoRoot(t), "internal"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range metricDecl.FindAllStringSubmatch(string(src), -1) {
			for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
				out[m[1]+suffix] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no metric declarations found")
	}
	return out
}

func checkMetricRefs(t *testing.T, where, expr string, exported map[string]bool) {
	t.Helper()
	for _, name := range metricRef.FindAllString(expr, -1) {
		if !exported[name] {
			t.Errorf("%s uses %s, which the code does not export", where, name)
		}
	}
}

// TestAlerts checks config/prometheus: every alert names only metrics the code exports and only
// repair kinds the manager counts, has a severity and a summary, and selects the job its
// ServiceMonitor produces.
func TestAlerts(t *testing.T) {
	exported := exportedMetrics(t)
	objs := kustomize(t, "config/prometheus")
	monitor := objs.one(t, "ServiceMonitor", "homelab-autoscaler")
	jobLabel, _, _ := unstructured.NestedString(monitor.Object, "spec", "jobLabel")
	job := "homelab-autoscaler" // the value of jobLabel on the metrics Service
	if jobLabel != "app.kubernetes.io/name" {
		t.Fatalf("the ServiceMonitor's jobLabel is %q; the alerts select job=%q", jobLabel, job)
	}
	groups, _, _ := unstructured.NestedSlice(objs.one(t, "PrometheusRule", "homelab-autoscaler").Object, "spec", "groups")
	alerts := 0
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			rule := r.(map[string]any)
			name, _ := rule["alert"].(string)
			expr, _ := rule["expr"].(string)
			if record, _ := rule["record"].(string); record != "" && expr != "" {
				// A recording rule: named level:metric:operations, reading only exported metrics.
				if !recordName.MatchString(record) {
					t.Errorf("recording rule %q is not named homelab_autoscaler:metric:operations", record)
				}
				checkMetricRefs(t, record, expr, exported)
				continue
			}
			if name == "" || expr == "" {
				t.Errorf("rule without alert name or expr: %v", rule)
				continue
			}
			alerts++
			checkMetricRefs(t, name, expr, exported)
			for _, m := range repairKind.FindAllStringSubmatch(expr, -1) {
				if !repairKinds[m[1]] {
					t.Errorf("%s selects repairs of kind %q, which the manager never counts", name, m[1])
				}
			}
			if strings.Contains(expr, "job=") && !strings.Contains(expr, `job="`+job+`"`) {
				t.Errorf("%s selects a job other than %q", name, job)
			}
			labels, _ := rule["labels"].(map[string]any)
			annotations, _ := rule["annotations"].(map[string]any)
			if labels["severity"] == nil || annotations["summary"] == nil {
				t.Errorf("%s lacks a severity or a summary", name)
			}
		}
	}
	if alerts < 6 {
		t.Errorf("only %d alerts", alerts)
	}
}

// TestDashboard checks the Grafana dashboard: valid JSON, and every query names only exported
// metrics.
func TestDashboard(t *testing.T) {
	exported := exportedMetrics(t)
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "grafana", "homelab-autoscaler.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	recorded := recordedRules(t)
	queries := 0
	for _, p := range dash.Panels {
		for _, q := range p.Targets {
			queries++
			checkMetricRefs(t, "panel "+p.Title, q.Expr, exported)
			for _, name := range recordRef.FindAllString(q.Expr, -1) {
				if !recorded[name] {
					t.Errorf("panel %s reads %s, which no recording rule records", p.Title, name)
				}
			}
		}
	}
	for _, v := range dash.Templating.List {
		checkMetricRefs(t, "variable", v.Definition, exported)
	}
	if dash.UID == "" || queries < 10 {
		t.Errorf("dashboard uid %q with %d queries", dash.UID, queries)
	}
	if cm := kustomize(t, "config/grafana").one(t, "ConfigMap", "homelab-autoscaler-dashboard"); cm.GetLabels()["grafana_dashboard"] == "" {
		t.Error("the dashboard ConfigMap lacks the grafana_dashboard label")
	}
}

// recordedRules returns the names the PrometheusRule's recording rules record.
func recordedRules(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	groups, _, _ := unstructured.NestedSlice(kustomize(t, "config/prometheus").one(t, "PrometheusRule", "homelab-autoscaler").Object, "spec", "groups")
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			if name, _ := r.(map[string]any)["record"].(string); name != "" {
				out[name] = true
			}
		}
	}
	return out
}
