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
work="$root/.demo/energy-picture"
cluster=homelab-energy
ns=default
say() { echo "energy-picture: $*"; }
. "$root/hack/lib/local-homelab.sh"
trap stop_local_homelab EXIT
trap 'exit 130' INT TERM

power() { # power on|off MACHINE...
	local action=$1 m; shift
	for m in "$@"; do homelabctl power "$action" "$m" -n "$ns"; done
}

start_control_plane
start_manager "$ns" "${GRPC_PORT:-18087}"
start_sim "$ns" --boot-delay 4s --shutdown-delay 2s --debug-address ""
say "manager and homelab-sim started (logs in .demo/energy-picture/)"

wait_for "the Group" 60 kubectl get hlg -n "$ns" workers
kubectl patch hlg -n "$ns" workers --type merge -p '{"spec": {
	"energy": {"pricePerKWh": "0.32", "currency": "EUR", "timeZone": "Europe/Berlin"},
	"repair": {"observeInterval": "10s"},
	"machineDefaults": {"powerDraw": {"onWatts": "65", "offWatts": "2.5"}}}}' >/dev/null
settle "$ns" Off workers-0 workers-1 workers-2 workers-3

say "scripted power changes for about two and a half minutes"
sleep 20
power on workers-0 workers-1
settle "$ns" Ready workers-0 workers-1
sleep 30
power off workers-1
power on workers-2
settle "$ns" Ready workers-2
sleep 30
power on workers-1
power off workers-0
settle "$ns" Ready workers-1
sleep 30
power off workers-1 workers-2
settle "$ns" Off workers-0 workers-1 workers-2
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
