#!/usr/bin/env bash
# make demo: a local control plane (kwokctl with the cached binaries: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok), homelab-autoscaler's CRDs and manager, a group
# of four machines, and a scripted power-on / power-off, shown live. Everything stays on loopback
# and under .demo/ in the work tree; Ctrl-C removes it all.
#
# Until the virtual homelab (homelab-sim) lands, the machines' power buttons are Jobs that kwok
# completes, and this script plays the machines' kubelets: it registers a machine's core Node
# (kwok keeps it Ready) a few seconds after its power-on Job succeeded, and removes it after its
# power-off Job succeeded.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
: "${TOOLS_BIN:?}" "${K8S_VERSION:?}"
demo="$root/.demo"
boot_delay=${BOOT_DELAY:-4}
cluster=homelab-demo
mkdir -p "$demo/home"
export HOME="$demo/home" KUBECONFIG="$demo/kubeconfig"
export KWOK_KUBE_VERSION="v$K8S_VERSION" KWOK_KUBECTL_BINARY="$TOOLS_BIN/kubectl"
kubectl() { "$TOOLS_BIN/kubectl" "$@"; }

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
kubectl wait --for condition=Established crd/groups.infra.homelab-autoscaler.dev crd/nodes.infra.homelab-autoscaler.dev >/dev/null

"$root/bin/homelab-autoscaler" --kubeconfig "$KUBECONFIG" --namespace default \
	--metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
	--power-confirm-interval 1s >"$demo/manager.log" 2>&1 &
pids+=($!)
echo "demo: homelab-autoscaler manager started (log: .demo/manager.log)"

# An always-on node where the power Jobs run.
kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata:
  name: homelab-control
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {role: power-jobs}
YAML

power_job() {
	cat <<YAML
      job:
        image: busybox:1.37
        command: ["sh", "-c", "echo pressing the $1 button of \$HOMELAB_NODE"]
        nodeSelector: {role: power-jobs}
        tolerations: [{key: node.kubernetes.io/not-ready, operator: Exists}]
YAML
}
{
	cat <<YAML
apiVersion: infra.homelab-autoscaler.dev/v1alpha1
kind: Group
metadata: {name: workers, namespace: default}
spec:
  minSize: 0
  maxSize: 4
  template:
    capacity: {cpu: "8", memory: 32Gi, pods: "110"}
YAML
	for i in 1 2 3 4; do
		cat <<YAML
---
apiVersion: infra.homelab-autoscaler.dev/v1alpha1
kind: Node
metadata: {name: worker-$i, namespace: default}
spec:
  group: workers
  powerState: "off"
  bootTimeout: 2m
  power:
    start:
$(power_job on)
    stop:
$(power_job off)
YAML
	done
} | kubectl apply -f - >/dev/null
echo "demo: created group 'workers' with machines worker-1..worker-4 (all off)"

# The machines: a core Node appears $boot_delay s after a successful power-on Job and goes away
# after a successful power-off Job.
play_machines() {
	declare -A seen=()
	while true; do
		while read -r job node action done; do
			[ "$done" = "1" ] || continue
			[ -n "${seen[$job]:-}" ] && continue
			seen[$job]=1
			if [ "$action" = "on" ]; then
				( sleep "$boot_delay"
				  kubectl apply -f - >/dev/null 2>&1 <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $node
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/hostname: $node}
status:
  allocatable: {cpu: "8", memory: 32Gi, pods: "110"}
  capacity: {cpu: "8", memory: 32Gi, pods: "110"}
YAML
				) &
			else
				kubectl delete node "$node" --ignore-not-found >/dev/null 2>&1 || true
			fi
		done < <(kubectl get jobs -n default -l homelab-autoscaler.dev/power-action \
			-o jsonpath='{range .items[*]}{.metadata.name} {.metadata.labels.homelab-autoscaler\.dev/node} {.metadata.labels.homelab-autoscaler\.dev/power-action} {.status.succeeded}{"\n"}{end}' 2>/dev/null)
		sleep 1
	done
}
play_machines >"$demo/machines.log" 2>&1 &
pids+=($!)

show() {
	echo
	echo "---- $1 ($(date +%T))"
	kubectl get hlg,hln -n default
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
progress_is() { [ "$(kubectl get hln -n default "$1" -o jsonpath='{.status.progress}')" = "$2" ]; }
set_power() { kubectl patch hln -n default "$1" --type merge -p "{\"spec\":{\"powerState\":\"$2\"}}" >/dev/null; }

wait_for "the machines to settle" 60 progress_is worker-4 Off
show "four machines, all off"

echo
echo "demo: scale up by 2: powering on worker-1 and worker-2"
set_power worker-1 on
set_power worker-2 on
sleep 2
show "power-on Jobs ran; the machines boot"
wait_for "worker-1 and worker-2 to be Ready" 90 bash -c "[ \"\$($TOOLS_BIN/kubectl get hln -n default worker-1 worker-2 -o jsonpath='{.items[*].status.progress}')\" = 'Ready Ready' ]"
show "worker-1 and worker-2 joined the cluster"
kubectl get nodes -L homelab-autoscaler.dev/group

echo
echo "demo: scale down by 1: powering off worker-2 (cordon, drain, power-off Job, node removed)"
set_power worker-2 off
wait_for "worker-2 to be Off" 90 progress_is worker-2 Off
show "worker-2 is off again"
kubectl get nodes -L homelab-autoscaler.dev/group
echo
kubectl get events -n default --field-selector involvedObject.name=worker-2 --sort-by=.lastTimestamp 2>/dev/null | tail -8 || true

if [ "${DEMO_EXIT:-}" = 1 ]; then exit 0; fi
cat <<EOT

demo: the cluster stays up. In another terminal:
  export KUBECONFIG=$KUBECONFIG
  $TOOLS_BIN/kubectl get homelab -n default
  $TOOLS_BIN/kubectl patch hln worker-3 -n default --type merge -p '{"spec":{"powerState":"on"}}'
Press Ctrl-C to stop and remove everything.
EOT
while true; do sleep 3600; done
