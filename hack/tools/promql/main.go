// Command promql parses every PromQL expression of a PrometheusRule manifest and of a Grafana
// dashboard with Prometheus's parser, so a syntax error fails the lint instead of the alert.
//
//	go run . RULE.yaml DASHBOARD.json
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: promql RULE.yaml DASHBOARD.json")
		os.Exit(2)
	}
	exprs, err := ruleExprs(os.Args[1])
	if err == nil {
		var more map[string]string
		more, err = dashboardExprs(os.Args[2])
		for k, v := range more {
			exprs[k] = v
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	failed := false
	for where, expr := range exprs {
		if _, err := parser.NewParser(parser.Options{}).ParseExpr(expr); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", where, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
	fmt.Printf("promql: %d expressions parse\n", len(exprs))
}

func ruleExprs(file string) (map[string]string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var rule struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert, Record, Expr string
				}
			}
		}
	}
	if err := yaml.Unmarshal(raw, &rule); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	out := map[string]string{}
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			out[file+": "+r.Alert+r.Record] = r.Expr
		}
	}
	return out, nil
}

// Grafana variables are replaced by values of their type, so the rest can be parsed.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$group", ".*")

func dashboardExprs(file string) (map[string]string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	out := map[string]string{}
	for _, p := range dash.Panels {
		for i, t := range p.Targets {
			out[fmt.Sprintf("%s: panel %q query %d", file, p.Title, i)] = grafanaVars.Replace(t.Expr)
		}
	}
	return out, nil
}
