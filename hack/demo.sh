#!/usr/bin/env bash
# make demo: a local control plane (kwokctl with the cached binaries: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok), homelab-autoscaler's CRDs and manager, a virtual
# homelab of four machines (homelab-sim: a Redfish BMC per machine; kwok keeps their Nodes
# Ready once they boot), and a scripted scale-up / scale-down, shown live. Everything stays on
# loopback and under .demo/ in the work tree; Ctrl-C removes it all.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/.demo"
cluster=homelab-demo
say() { echo "demo: $*"; }
. "$root/hack/lib/local-homelab.sh"
grpc=(--address "127.0.0.1:${GRPC_PORT:-18086}" --insecure)

cleanup() {
	echo
	say "stopping"
	stop_local_homelab
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_control_plane
start_manager default "${GRPC_PORT:-18086}"
say "homelab-autoscaler manager started (log: .demo/manager.log)"
start_sim default --boot-delay "${BOOT_DELAY:-4s}" --shutdown-delay "${SHUTDOWN_DELAY:-2s}"
say "homelab-sim plays four machines, each with its own Redfish BMC on 127.0.0.1 (log: .demo/homelab-sim.log)"

show() {
	echo
	echo "---- $1 ($(date +%T))"
	kubectl get hlg,hlm -n default
}

wait_for "the machines to settle" 60 progress_is default workers-3 Off
show "four machines, all off"
# A price for the energy report at the end (docs/energy.md). The BMCs measure the draw; the
# configured on draw is what a machine never seen running counts as saving while it stays off.
# The accounts advance with the machines' status writes: a 10s observation interval (5m by
# default) lets a demo of a minute see them move.
kubectl patch hlg workers -n default --type merge -p '{"spec":{"energy":{"pricePerKWh":"0.30","currency":"EUR"},
	"machineDefaults":{"powerDraw":{"onWatts":"45"}},"repair":{"observeInterval":"10s"}}}' >/dev/null

echo
echo "demo: what cluster-autoscaler sees (homelabctl cloudprovider check, over gRPC):"
wait_for "the gRPC server" 60 homelabctl cloudprovider check "${grpc[@]}"
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
wait_for "$victim to be Off" 90 progress_is default "$victim" Off
show "$victim is off again"
kubectl get nodes -L homelab-autoscaler.dev/namespace,homelab-autoscaler.dev/group
echo
kubectl get events -n default --field-selector involvedObject.name=$victim --sort-by=.lastTimestamp 2>/dev/null | tail -8 || true
echo
homelabctl status -n default
echo
echo "demo: the energy the machines used and what keeping them off saved (homelabctl energy, from the BMCs' readings):"
sleep 12 # one more observation of every machine
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
