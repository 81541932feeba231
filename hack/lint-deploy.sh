#!/usr/bin/env bash
# Lints the deployment artifacts: helm lint and helm template of the chart with its default
# values and with every option on (ci/*.yaml), kubectl kustomize of every overlay in config/, and
# the PromQL of the alerts and the dashboard, parsed by Prometheus's parser (hack/tools/promql).
# Needs the control plane's kubectl (make controlplane), which has kustomize built in.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
: "${TOOLS_BIN:?TOOLS_BIN must point at the control-plane binaries}"
go=${GO:-go}
helm() { "$go" tool -modfile=hack/tools/helm/go.mod helm "$@"; }
chart=charts/homelab-autoscaler
failed=0
step() {
	local what=$1
	shift
	if ! out=$("$@" 2>&1); then
		echo "lint-deploy: $what failed:" >&2
		echo "$out" | tail -30 >&2
		failed=1
	fi
}
# A cold first build of the pinned Helm takes minutes; say so rather than look stuck.
echo "lint-deploy: helm lint/template and kubectl kustomize (the first run builds the pinned helm)"
for values in "" $chart/ci/*.yaml; do
	args=()
	[ -n "$values" ] && args=(-f "$values")
	step "helm lint ${values:-(default values)}" helm lint --strict "${args[@]}" $chart
	step "helm template ${values:-(default values)}" helm template homelab-autoscaler $chart --namespace homelab-autoscaler "${args[@]}"
done
for overlay in config/default config/with-cert-manager config/with-cluster-autoscaler config/cluster-autoscaler config/all-namespaces config/agent config/prometheus config/grafana; do
	step "kubectl kustomize $overlay" "$TOOLS_BIN/kubectl" kustomize "$overlay"
done
promql() { (cd hack/tools/promql && "$go" run . "$root/config/prometheus/prometheusrule.yaml" "$root/config/grafana/homelab-autoscaler.json"); }
step "PromQL check of config/prometheus and config/grafana" promql
if [ "$failed" != 0 ]; then
	echo "lint-deploy: the chart, an overlay or a query is broken; see above" >&2
	exit 1
fi
echo "deployment artifacts: chart and overlays render, PromQL parses"
