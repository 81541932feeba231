#!/usr/bin/env bash
# make demo: a local control plane (kwokctl with the cached binaries: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok), homelab-autoscaler's CRDs and manager, a virtual
# homelab of four machines (homelab-sim: a Redfish BMC per machine; kwok keeps their Nodes
# Ready once they boot), and a scripted scale-up / scale-down, shown live. Everything stays on
# loopback and under .demo/ in the work tree; Ctrl-C removes it all.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
: "${TOOLS_BIN:?}" "${K8S_VERSION:?}"
demo="$root/.demo"
cluster=homelab-demo
mkdir -p "$demo/home"
export HOME="$demo/home" KUBECONFIG="$demo/kubeconfig"
export KWOK_KUBE_VERSION="v$K8S_VERSION" KWOK_KUBECTL_BINARY="$TOOLS_BIN/kubectl"
kubectl() { "$TOOLS_BIN/kubectl" "$@"; }
homelabctl() { "$root/bin/homelabctl" "$@"; }
grpc=(--address "127.0.0.1:${GRPC_PORT:-18086}" --insecure)

pids=()
cleanup() {
	echo
	echo "demo: stopping"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	"$TOOLS_BIN/kwokctl" delete cluster --name "$cluster" >/dev/null 2>&1 || true
	echo "demo: removed the cluster; logs stay in $demo"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$TOOLS_BIN/kwokctl" delete cluster --name "$cluster" >/dev/null 2>&1 || true
echo "demo: starting a local control plane (kwokctl, Kubernetes v$K8S_VERSION)"
start=$(date +%s)
"$TOOLS_BIN/kwokctl" create cluster --name "$cluster" --runtime binary --kubeconfig "$KUBECONFIG" \
	--kube-apiserver-binary "$TOOLS_BIN/kube-apiserver" --etcd-binary "$TOOLS_BIN/etcd" \
	--kube-controller-manager-binary "$TOOLS_BIN/kube-controller-manager" \
	--kube-scheduler-binary "$TOOLS_BIN/kube-scheduler" --kwok-controller-binary "$TOOLS_BIN/kwok" \
	--wait 120s >"$demo/kwokctl.log" 2>&1
echo "demo: control plane up after $(( $(date +%s) - start ))s"

kubectl apply --server-side -f "$root/config/crd/bases/" >/dev/null
kubectl wait --for condition=Established crd/groups.infra.homelab-autoscaler.dev crd/machines.infra.homelab-autoscaler.dev >/dev/null

"$root/bin/homelab-autoscaler" --kubeconfig "$KUBECONFIG" --namespace default \
	--metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
	--grpc-bind-address "127.0.0.1:${GRPC_PORT:-18086}" --grpc-insecure \
	--driver-egress allow=127.0.0.1/32 \
	--power-confirm-interval 1s >"$demo/manager.log" 2>&1 &
pids+=($!)
echo "demo: homelab-autoscaler manager started (log: .demo/manager.log)"

"$root/bin/homelab-sim" --kubeconfig "$KUBECONFIG" --namespace default --group workers --machines 4 \
	--boot-delay "${BOOT_DELAY:-4s}" --shutdown-delay "${SHUTDOWN_DELAY:-2s}" --log-format text \
	--manifests "$demo/homelab.yaml" --apply >"$demo/homelab-sim.log" 2>&1 &
pids+=($!)
echo "demo: homelab-sim plays four machines, each with its own Redfish BMC on 127.0.0.1 (log: .demo/homelab-sim.log)"

show() {
	echo
	echo "---- $1 ($(date +%T))"
	kubectl get hlg,hlm -n default
}
wait_for() { # wait_for DESCRIPTION SECONDS CONDITION...
	local what=$1 limit=$2; shift 2
	for _ in $(seq "$limit"); do
		if "$@"; then return 0; fi
		sleep 1
	done
	echo "demo: timed out waiting for $what" >&2
	return 1
}
progress_is() { [ "$(kubectl get hlm -n default "$1" -o jsonpath='{.status.progress}')" = "$2" ]; }

wait_for "the machines to settle" 60 progress_is workers-3 Off
show "four machines, all off"
# A price for the energy report at the end (docs/energy.md); the BMCs measure the draw.
kubectl patch hlg workers -n default --type merge -p '{"spec":{"energy":{"pricePerKWh":"0.30","currency":"EUR"}}}' >/dev/null

echo
echo "demo: what cluster-autoscaler sees (homelabctl cloudprovider check, over gRPC):"
wait_for "the gRPC server" 60 homelabctl cloudprovider check "${grpc[@]}" >/dev/null 2>&1
homelabctl cloudprovider check "${grpc[@]}"
echo
echo "demo: scale up by 2, as cluster-autoscaler would: homelabctl cloudprovider scale-up default/workers 2"
homelabctl cloudprovider scale-up default/workers 2 "${grpc[@]}"
sleep 2
show "the BMCs were told to power on; the machines boot"
wait_for "two machines to be Ready" 90 bash -c "[ \"\$($TOOLS_BIN/kubectl get hlm -n default -o jsonpath='{range .items[*]}{.status.progress}{\"\\n\"}{end}' | grep -c Ready)\" = 2 ]"
show "two machines joined the cluster"
kubectl get nodes -L homelab-autoscaler.dev/namespace,homelab-autoscaler.dev/group

echo
victim=$(kubectl get hlm -n default -o jsonpath='{range .items[?(@.status.progress=="Ready")]}{.metadata.name}{"\n"}{end}' | tail -1)
echo "demo: scale down by 1, as cluster-autoscaler would: homelabctl cloudprovider scale-down default/workers $victim"
echo "      (cordon, graceful shutdown through Redfish, Node removed; no second drain: CA drained it)"
homelabctl cloudprovider scale-down default/workers "$victim" "${grpc[@]}" -n default
wait_for "$victim to be Off" 90 progress_is "$victim" Off
show "$victim is off again"
kubectl get nodes -L homelab-autoscaler.dev/namespace,homelab-autoscaler.dev/group
echo
kubectl get events -n default --field-selector involvedObject.name=$victim --sort-by=.lastTimestamp 2>/dev/null | tail -8 || true
echo
homelabctl status -n default
echo
echo "demo: the energy the machines used and what keeping them off saved (homelabctl energy, from the BMCs' readings):"
homelabctl energy -n default --machines

if [ "${DEMO_EXIT:-}" = 1 ]; then exit 0; fi
cat <<EOT

demo: the cluster stays up. In another terminal:
  export KUBECONFIG=$KUBECONFIG
  $TOOLS_BIN/kubectl get homelab -n default
  $root/bin/homelabctl status -n default
  $root/bin/homelabctl power on workers-2 -n default
  $root/bin/homelabctl cloudprovider check --address 127.0.0.1:${GRPC_PORT:-18086} --insecure
Press Ctrl-C to stop and remove everything.
EOT
while true; do sleep 3600; done
