#!/usr/bin/env bash
# make energy-picture: regenerates docs/energy-timeline.svg and docs/energy-example.txt from a
# real run. As make demo does: a local control plane (kwokctl with the cached binaries), the CRDs,
# the manager and homelab-sim's four Redfish machines. The Group gets a price, a time zone,
# configured draws and a 10s observe interval; the machines are powered on and off by hand for
# about two and a half minutes; then `homelabctl energy --machines --svg` draws what the accounts
# recorded. Everything stays on loopback and under .demo/energy-picture/; the cluster is removed at
# the end. The docs are only replaced when the run produced energy accounts.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
: "${TOOLS_BIN:?}" "${K8S_VERSION:?}"
work="$root/.demo/energy-picture"
cluster=homelab-energy
ns=default
mkdir -p "$work/home"
export HOME="$work/home" KUBECONFIG="$work/kubeconfig"
export KWOK_KUBE_VERSION="v$K8S_VERSION" KWOK_KUBECTL_BINARY="$TOOLS_BIN/kubectl"
kubectl() { "$TOOLS_BIN/kubectl" "$@"; }
homelabctl() { "$root/bin/homelabctl" "$@"; }
say() { echo "energy-picture: $*"; }

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	"$TOOLS_BIN/kwokctl" delete cluster --name "$cluster" >/dev/null 2>&1 || true
	say "removed the cluster; logs stay in $work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # wait_for DESCRIPTION SECONDS COMMAND...
	local what=$1 limit=$2; shift 2
	for _ in $(seq "$limit"); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 1
	done
	say "timed out waiting for $what" >&2
	return 1
}
progress_is() { [ "$(kubectl get hlm -n "$ns" "$1" -o jsonpath='{.status.progress}')" = "$2" ]; }
power() { # power on|off MACHINE...
	local action=$1 m; shift
	for m in "$@"; do homelabctl power "$action" "$m" -n "$ns"; done
}
settle() { # settle Ready|Off MACHINE...
	local want=$1 m; shift
	for m in "$@"; do wait_for "$m to be $want" 90 progress_is "$m" "$want"; done
}

"$TOOLS_BIN/kwokctl" delete cluster --name "$cluster" >/dev/null 2>&1 || true
say "starting a local control plane (kwokctl, Kubernetes v$K8S_VERSION)"
"$TOOLS_BIN/kwokctl" create cluster --name "$cluster" --runtime binary --kubeconfig "$KUBECONFIG" \
	--kube-apiserver-binary "$TOOLS_BIN/kube-apiserver" --etcd-binary "$TOOLS_BIN/etcd" \
	--kube-controller-manager-binary "$TOOLS_BIN/kube-controller-manager" \
	--kube-scheduler-binary "$TOOLS_BIN/kube-scheduler" --kwok-controller-binary "$TOOLS_BIN/kwok" \
	--wait 120s >"$work/kwokctl.log" 2>&1
kubectl apply --server-side -f "$root/config/crd/bases/" >/dev/null
kubectl wait --for condition=Established crd/groups.infra.homelab-autoscaler.dev crd/machines.infra.homelab-autoscaler.dev >/dev/null

"$root/bin/homelab-autoscaler" --kubeconfig "$KUBECONFIG" --namespace "$ns" \
	--metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
	--grpc-bind-address "127.0.0.1:${GRPC_PORT:-18087}" --grpc-insecure \
	--driver-egress allow=127.0.0.1/32 --power-confirm-interval 1s >"$work/manager.log" 2>&1 &
pids+=($!)
"$root/bin/homelab-sim" --kubeconfig "$KUBECONFIG" --namespace "$ns" --group workers --machines 4 \
	--boot-delay 4s --shutdown-delay 2s --log-format text --debug-address "" \
	--manifests "$work/homelab.yaml" --apply >"$work/homelab-sim.log" 2>&1 &
pids+=($!)
say "manager and homelab-sim started (logs in .demo/energy-picture/)"

wait_for "the Group" 60 kubectl get hlg -n "$ns" workers
kubectl patch hlg -n "$ns" workers --type merge -p '{"spec": {
	"energy": {"pricePerKWh": "0.32", "currency": "EUR", "timeZone": "Europe/Berlin"},
	"repair": {"observeInterval": "10s"},
	"machineDefaults": {"powerDraw": {"onWatts": "65", "offWatts": "2.5"}}}}' >/dev/null
settle Off workers-0 workers-1 workers-2 workers-3

say "scripted power changes for about two and a half minutes"
sleep 20
power on workers-0 workers-1
settle Ready workers-0 workers-1
sleep 30
power off workers-1
power on workers-2
settle Ready workers-2
sleep 30
power on workers-1
power off workers-0
settle Ready workers-1
sleep 30
power off workers-1 workers-2
settle Off workers-0 workers-1 workers-2
sleep 15

if [ -z "$(kubectl get hlm -n "$ns" -o jsonpath='{.items[*].status.energy.since}')" ]; then
	say "the manager kept no energy accounts (status.energy is empty); docs left unchanged" >&2
	exit 1
fi
cmd=(energy --machines -n "$ns" --svg "$work/energy-timeline.svg")
{
	echo "\$ homelabctl energy --machines"
	homelabctl "${cmd[@]}"
} >"$work/energy-example.txt"
cp "$work/energy-timeline.svg" "$root/docs/energy-timeline.svg"
cp "$work/energy-example.txt" "$root/docs/energy-example.txt"
cat "$root/docs/energy-example.txt"
say "wrote docs/energy-timeline.svg and docs/energy-example.txt"
