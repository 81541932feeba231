# Sourced by hack/demo.sh and hack/energy-picture.sh: a local control plane (kwokctl with the
# cached binaries: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok), the CRDs,
# the manager and homelab-sim, all on loopback, with their logs and state under one directory.
#
# The sourcing script sets root, work (its directory), cluster (the kwokctl cluster's name) and
# say (how it prints a line), and has TOOLS_BIN and K8S_VERSION from make.

: "${TOOLS_BIN:?}" "${K8S_VERSION:?}" "${root:?}" "${work:?}" "${cluster:?}"
mkdir -p "$work/home"
export HOME="$work/home" KUBECONFIG="$work/kubeconfig"
export KWOK_KUBE_VERSION="v$K8S_VERSION" KWOK_KUBECTL_BINARY="$TOOLS_BIN/kubectl"
kubectl() { "$TOOLS_BIN/kubectl" "$@"; }
homelabctl() { "$root/bin/homelabctl" "$@"; }

# pids are the processes stop_local_homelab ends.
pids=()

# stop_local_homelab stops the manager and homelab-sim and removes the cluster.
stop_local_homelab() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	"$TOOLS_BIN/kwokctl" delete cluster --name "$cluster" >/dev/null 2>&1 || true
	say "removed the cluster; logs stay in $work"
}

# start_control_plane creates the cluster (removing a left-over one first) and installs the CRDs.
start_control_plane() {
	"$TOOLS_BIN/kwokctl" delete cluster --name "$cluster" >/dev/null 2>&1 || true
	say "starting a local control plane (kwokctl, Kubernetes v$K8S_VERSION)"
	local start
	start=$(date +%s)
	"$TOOLS_BIN/kwokctl" create cluster --name "$cluster" --runtime binary --kubeconfig "$KUBECONFIG" \
		--kube-apiserver-binary "$TOOLS_BIN/kube-apiserver" --etcd-binary "$TOOLS_BIN/etcd" \
		--kube-controller-manager-binary "$TOOLS_BIN/kube-controller-manager" \
		--kube-scheduler-binary "$TOOLS_BIN/kube-scheduler" --kwok-controller-binary "$TOOLS_BIN/kwok" \
		--wait 120s >"$work/kwokctl.log" 2>&1
	say "control plane up after $(($(date +%s) - start))s"
	kubectl apply --server-side -f "$root/config/crd/bases/" >/dev/null
	kubectl wait --for condition=Established crd/groups.infra.homelab-autoscaler.dev crd/machines.infra.homelab-autoscaler.dev >/dev/null
}

# start_manager NAMESPACE GRPC_PORT runs the manager for NAMESPACE, its gRPC server plain on
# loopback, its drivers allowed to reach loopback only (where homelab-sim's BMCs listen).
start_manager() {
	"$root/bin/homelab-autoscaler" --kubeconfig "$KUBECONFIG" --namespace "$1" \
		--metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
		--grpc-bind-address "127.0.0.1:$2" --grpc-insecure \
		--driver-egress allow=127.0.0.1/32 \
		--power-confirm-interval 1s >"$work/manager.log" 2>&1 &
	pids+=($!)
}

# start_sim NAMESPACE [FLAG...] runs homelab-sim's four machines of Group workers in NAMESPACE
# and applies its objects; FLAGs are added to its command line.
start_sim() {
	local ns=$1
	shift
	"$root/bin/homelab-sim" --kubeconfig "$KUBECONFIG" --namespace "$ns" --group workers --machines 4 \
		--log-format text --manifests "$work/homelab.yaml" --apply "$@" >"$work/homelab-sim.log" 2>&1 &
	pids+=($!)
}

# wait_for DESCRIPTION SECONDS COMMAND... runs COMMAND every second until it succeeds.
wait_for() {
	local what=$1 limit=$2
	shift 2
	for _ in $(seq "$limit"); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 1
	done
	say "timed out waiting for $what" >&2
	return 1
}

# progress_is NAMESPACE MACHINE PROGRESS succeeds when the Machine's status.progress is PROGRESS.
progress_is() { [ "$(kubectl get hlm -n "$1" "$2" -o jsonpath='{.status.progress}')" = "$3" ]; }

# settle NAMESPACE Ready|Off MACHINE...: waits up to 90 s for each machine to reach that progress.
settle() {
	local ns=$1 want=$2 m
	shift 2
	for m in "$@"; do wait_for "$m to be $want" 90 progress_is "$ns" "$m" "$want"; done
}
