#!/usr/bin/env bash
# The Helm chart carries copies of files generated or kept in config/ (Helm reads nothing outside
# the chart): the CRDs, the manager's generated roles, the alerts and the dashboard.
# Without arguments it copies them; with --verify it fails when a copy differs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
chart=$root/charts/homelab-autoscaler
cd "$root"
pairs=(
	"config/rbac/role.yaml files/rbac/role.yaml"
	"config/rbac/namespaced/role.yaml files/rbac/namespaced-role.yaml"
	"config/prometheus/prometheusrule.yaml files/prometheusrule.yaml"
	"config/grafana/homelab-autoscaler.json files/homelab-autoscaler.json"
)
for crd in config/crd/bases/*.yaml; do
	pairs+=("$crd crds/$(basename "$crd")")
done
if [ "${1:-}" = --verify ]; then
	status=0
	for p in "${pairs[@]}"; do
		read -r src dst <<<"$p"
		if ! cmp -s "$src" "$chart/$dst"; then
			echo "charts/homelab-autoscaler/$dst differs from $src; run 'make chart-sync'" >&2
			status=1
		fi
	done
	# A CRD removed from config/ must go from the chart too.
	for dst in "$chart"/crds/*.yaml; do
		[ -e "config/crd/bases/$(basename "$dst")" ] || { echo "charts/homelab-autoscaler/crds/$(basename "$dst") has no source in config/crd/bases; run 'make chart-sync'" >&2; status=1; }
	done
	[ "$status" = 0 ] && echo "chart copies: up to date"
	exit "$status"
fi
rm -f "$chart"/crds/*.yaml
for p in "${pairs[@]}"; do
	read -r src dst <<<"$p"
	mkdir -p "$(dirname "$chart/$dst")"
	cp "$src" "$chart/$dst"
done
