#!/usr/bin/env bash
# make dashboard-screenshot: regenerates docs/dashboard.png from a real run. As make demo does: a
# local control plane (kwokctl with the cached binaries), the CRDs, the manager and homelab-sim's
# four Redfish machines. The Group gets a price and configured draws; one machine is powered on
# through the cloud-provider gRPC API (as cluster-autoscaler would) and one by hand; then
# `homelabctl dashboard` serves the page and hack/screenshot pictures it with headless Chromium
# once it shows both machines Ready and the node group the gRPC server reports. Everything stays
# on loopback and under .demo/dashboard-screenshot/; the cluster is removed at the end.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/.demo/dashboard-screenshot"
cluster=homelab-dashboard
ns=default
grpc_port=${GRPC_PORT:-18088}
port=${DASHBOARD_PORT:-18089}
say() { echo "dashboard-screenshot: $*"; }
if [ ! -x /usr/bin/chromium ]; then
	say "needs Debian's Chromium at /usr/bin/chromium: apt-get install chromium (hack/install-test-deps.sh installs it)" >&2
	exit 1
fi
# Built before local-homelab.sh points HOME (and so Go's caches) into the work folder.
mkdir -p "$work"
(cd "$root" && "${GO:-go}" build -o "$work/screenshot" ./hack/screenshot)
. "$root/hack/lib/local-homelab.sh"
trap stop_local_homelab EXIT
trap 'exit 130' INT TERM


start_control_plane
start_manager "$ns" "$grpc_port"
start_sim "$ns" --boot-delay 4s --shutdown-delay 2s --debug-address ""
say "manager and homelab-sim started (logs in .demo/dashboard-screenshot/)"

wait_for "the Group" 60 kubectl get hlg -n "$ns" workers
kubectl patch hlg -n "$ns" workers --type merge -p '{"spec": {
	"energy": {"pricePerKWh": "0.32", "currency": "EUR"},
	"repair": {"observeInterval": "10s"},
	"machineDefaults": {"powerDraw": {"onWatts": "65", "offWatts": "2.5"}}}}' >/dev/null
settle "$ns" Off workers-0 workers-1 workers-2 workers-3

grpc=(--address "127.0.0.1:$grpc_port" --insecure)
wait_for "the gRPC server" 60 homelabctl cloudprovider check "${grpc[@]}"
homelabctl cloudprovider scale-up "$ns/workers" 1 "${grpc[@]}"
homelabctl power on workers-2 -n "$ns"
settle "$ns" Ready workers-0 workers-2
# Two observation intervals, so the energy figures and the timelines have something to show.
sleep 20

"$root/bin/homelabctl" dashboard -n "$ns" --address "127.0.0.1:$port" --grpc-address "127.0.0.1:$grpc_port" --grpc-insecure \
	>"$work/dashboard.log" 2>&1 &
pids+=($!)
"$work/screenshot" -url "http://127.0.0.1:$port/" -out "$work/dashboard.png" -width 1280 -height 1600 \
	-until "document.querySelectorAll('#machines tbody tr[data-progress=\"Ready\"]').length === 2 && document.querySelectorAll('#nodegroups tbody tr[data-nodegroup]').length === 1"
cp "$work/dashboard.png" "$root/docs/dashboard.png"
say "wrote docs/dashboard.png"
