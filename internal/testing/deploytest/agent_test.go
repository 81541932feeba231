package deploytest_test

import (
	"bytes"
	"context"
	"flag"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/agent"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/relay"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

var privileged = map[string]string{"pod-security.kubernetes.io/enforce": "privileged"}

// The wake segments of testdata/agent-values.yaml and of config/agent, with the nodeSelector each
// must run with.
var (
	chartSegments = map[string]map[string]string{
		"lan-2": {"homelab.example/segment": "lan-2"},
		"lan-3": {"homelab.example/segment": "lan-3"},
	}
	kustomizeSegments = map[string]map[string]string{"lan-2": {"homelab.example/segment": "lan-2"}}
)

// TestAgentOffByDefault: nothing of the agent is rendered by the chart without agent values, or by
// config/default.
func TestAgentOffByDefault(t *testing.T) {
	for name, objs := range map[string]manifests{
		"the chart's defaults": helmTemplate(t, "plain", "chart-plain"),
		"config/default":       kustomize(t, "config/default"),
	} {
		for _, u := range objs {
			if u.GetKind() == "DaemonSet" || (strings.Contains(u.GetName(), "agent") && u.GetKind() != "CustomResourceDefinition") ||
				strings.HasPrefix(u.GetLabels()["app.kubernetes.io/component"], "agent") {
				t.Errorf("%s: renders %s %s/%s", name, u.GetKind(), u.GetNamespace(), u.GetName())
			}
		}
	}
}

// TestChartAgent installs the chart with both agents in a namespace of their own, watching two
// namespaces: the DaemonSets carry exactly the pod security each needs, and the agents'
// ServiceAccount may read AgentRequests and write their status in the watched namespaces alone.
func TestChartAgent(t *testing.T) {
	ensureNamespace(t, "chart-agent-rel", restricted)
	ensureNamespace(t, "chart-agent", privileged)
	watched := []string{"chart-agent-w1", "chart-agent-w2"}
	for _, ns := range watched {
		ensureNamespace(t, ns, nil)
	}
	objs := helmTemplate(t, "ag", "chart-agent-rel", "-f", "internal/testing/deploytest/testdata/agent-values.yaml",
		"--set", "agent.namespace=chart-agent,watchNamespaces={chart-agent-w1,chart-agent-w2}")
	const name = "ag-homelab-autoscaler"
	if n := len(objs.find("ClusterRoleBinding", name+"-agent")); n != 0 {
		t.Error("with watched namespaces the agents' rights must not be bound cluster-wide")
	}
	apply(t, objs)
	manager := into[appsv1.Deployment](t, objs.one(t, "Deployment", name))
	image := manager.Spec.Template.Spec.Containers[0].Image
	checkAgents(t, objs, name+"-agent", "chart-agent", image, chartSegments, watched)
	checkAgentRights(t, "chart-agent", name+"-agent", watched)
	// The manager is unchanged by the agents: its rights are still its own.
	checkManagerRights(t, manager, watched)
}

// TestChartAgentAllNamespaces: watching every namespace, the agents serve every namespace and
// their rights are bound cluster-wide.
func TestChartAgentAllNamespaces(t *testing.T) {
	ensureNamespace(t, "chart-agent-wide", privileged)
	objs := helmTemplate(t, "agwide", "chart-agent-wide", "-f", "internal/testing/deploytest/testdata/agent-values.yaml",
		"--set", "watchAllNamespaces=true")
	const name = "agwide-homelab-autoscaler"
	if n := len(objs.find("RoleBinding", name+"-agent")); n != 0 {
		t.Errorf("watching every namespace renders %d namespaced agent bindings", n)
	}
	crb := into[rbacv1.ClusterRoleBinding](t, objs.one(t, "ClusterRoleBinding", name+"-agent"))
	if crb.RoleRef.Name != name+"-agent" || len(crb.Subjects) != 1 || crb.Subjects[0].Name != name+"-agent" || crb.Subjects[0].Namespace != "chart-agent-wide" {
		t.Errorf("the agents' cluster-wide binding binds %v to %v", crb.Subjects, crb.RoleRef)
	}
	apply(t, objs)
	image := into[appsv1.Deployment](t, objs.one(t, "Deployment", name)).Spec.Template.Spec.Containers[0].Image
	checkAgents(t, objs, name+"-agent", "chart-agent-wide", image, chartSegments, nil)
	checkAgentRights(t, "chart-agent-wide", name+"-agent", nil)
}

// TestChartRefusesBrokenAgentValues: agent values that cannot work fail the rendering with a
// message that says what to set.
func TestChartRefusesBrokenAgentValues(t *testing.T) {
	for _, c := range []struct{ set, message string }{
		{"agent.wake.segments[0].name=lan-2", "agent.wake.segments[0] (lan-2) needs a nodeSelector"},
		{"agent.wake.segments[0].name=LAN_2,agent.wake.segments[0].nodeSelector.a=b", `agent.wake.segments[0].name "LAN_2" is not a segment name`},
		{"agent.wake.segments[0].name=lan-2,agent.wake.segments[0].nodeSelector.a=b,agent.wake.segments[1].name=lan-2,agent.wake.segments[1].nodeSelector.a=c",
			"agent.wake.segments names lan-2 twice"},
		{"agent.shutdown.enabled=true,agent.healthProbePort=0", "agent.healthProbePort 0 must be a port from 1 to 65535"},
		{"agent.shutdown.enabled=true,agent.metricsPort=8091", "agent.metricsPort 8091 must be 0 (off) or a port from 1 to 65535 other than agent.healthProbePort"},
		{"agent.shutdown.enabled=true,agent.namespace=homelab-machines", "watchNamespaces must not include the agents' namespace homelab-machines"},
	} {
		t.Run(c.set, func(t *testing.T) {
			t.Parallel() // each is a separate helm process
			out, err := helm("template", "broken", "charts/homelab-autoscaler", "--namespace", "chart-broken", "--set", c.set)
			if err == nil || !strings.Contains(out, c.message) {
				t.Errorf("err %v, output %q; want a failure saying %q", err, out, c.message)
			}
		})
	}
}

// TestKustomizeAgent installs config/agent: config/default unchanged, plus the agents in a
// namespace of their own that admits their pods, with their rights in homelab-machines alone.
func TestKustomizeAgent(t *testing.T) {
	ensureNamespace(t, "homelab-machines", nil)
	def, objs := kustomize(t, "config/default"), kustomize(t, "config/agent")
	key := func(u *unstructured.Unstructured) string {
		return u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
	}
	byKey := map[string]map[string]any{}
	for _, u := range objs {
		byKey[key(u)] = u.Object
	}
	for _, u := range def {
		if !reflect.DeepEqual(byKey[key(u)], u.Object) {
			t.Errorf("config/agent changes or drops config/default's %s", key(u))
		}
		delete(byKey, key(u))
	}
	added := slices.Sorted(maps.Keys(byKey))
	want := []string{
		"ClusterRole//homelab-agent",
		"DaemonSet/homelab-agent/homelab-agent-shutdown",
		"DaemonSet/homelab-agent/homelab-agent-wake-lan-2",
		"Namespace//homelab-agent",
		"RoleBinding/homelab-machines/homelab-agent",
		"ServiceAccount/homelab-agent/homelab-agent",
	}
	if !slices.Equal(added, want) {
		t.Errorf("config/agent adds %v to config/default, want %v", added, want)
	}
	if ns := objs.one(t, "Namespace", "homelab-agent"); ns.GetLabels()["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("the agents' namespace enforces %v; their pods need privileged", ns.GetLabels())
	}
	apply(t, objs)
	image := into[appsv1.Deployment](t, objs.one(t, "Deployment", "homelab-autoscaler")).Spec.Template.Spec.Containers[0].Image
	checkAgents(t, objs, "homelab-agent", "homelab-agent", image, kustomizeSegments, []string{"homelab-machines"})
	checkAgentRights(t, "homelab-agent", "homelab-agent", []string{"homelab-machines"})
	checkAgentsServe(t, objs, "homelab-agent", "homelab-agent", "homelab-machines")
	// Admitted in their own namespace, and refused by the baseline standard, which is why they
	// are not in the manager's.
	ensureNamespace(t, "baseline-check", map[string]string{"pod-security.kubernetes.io/enforce": "baseline"})
	for _, u := range objs.find("DaemonSet", "") {
		ds := into[appsv1.DaemonSet](t, u)
		if err := dryRunPod(ds, "homelab-agent"); err != nil {
			t.Errorf("the %s pod is refused in its namespace: %v", ds.Name, err)
		}
		if err := dryRunPod(ds, "baseline-check"); err == nil {
			t.Errorf("the %s pod passes the baseline Pod Security Standard: its namespace need not admit privileged pods", ds.Name)
		}
	}
}

// dryRunPod has the apiserver admit a DaemonSet's pod in namespace, without creating it.
func dryRunPod(ds *appsv1.DaemonSet, namespace string) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, GenerateName: ds.Name + "-"},
		Spec:       *ds.Spec.Template.Spec.DeepCopy(),
	}
	pod.Spec.ServiceAccountName = ""
	return env.Client.Create(context.Background(), pod, client.DryRunAll)
}

// checkAgents checks the agents' DaemonSets in namespace: one wake relay per segment, with that
// segment's nodeSelector, and the shutdown agent; each with its own pod security, the
// ServiceAccount sa, the manager's image, the watched namespaces (nil: every one), and arguments
// the agent itself accepts.
func checkAgents(t *testing.T, objs manifests, sa, namespace, image string, segments map[string]map[string]string, watched []string) {
	t.Helper()
	var wakes []string
	shutdowns := 0
	for _, u := range objs.find("DaemonSet", "") {
		ds := into[appsv1.DaemonSet](t, u)
		if ds.Namespace != namespace {
			t.Errorf("DaemonSet %s is in %s, not the agents' namespace %s", ds.Name, ds.Namespace, namespace)
		}
		spec := ds.Spec.Template.Spec
		if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
			t.Fatalf("DaemonSet %s: want one container", ds.Name)
		}
		switch o := checkAgentCommon(t, ds, sa, image, watched); {
		case o.Segment != "":
			wakes = append(wakes, o.Segment)
			checkWakeAgent(t, ds, segments[o.Segment])
		case o.Shutdown == agent.ShutdownLogind:
			shutdowns++
			checkShutdownAgent(t, ds, o)
		default:
			t.Errorf("DaemonSet %s serves neither a segment nor shutdowns: %v", ds.Name, spec.Containers[0].Args)
		}
	}
	slices.Sort(wakes)
	if !slices.Equal(wakes, slices.Sorted(maps.Keys(segments))) {
		t.Errorf("wake relays for the segments %v, want one for each of %v", wakes, slices.Sorted(maps.Keys(segments)))
	}
	if shutdowns != 1 {
		t.Errorf("%d shutdown agents, want 1", shutdowns)
	}
}

// checkAgentCommon checks what every agent pod has, and returns its options as the agent parses
// and validates its arguments (with the downward API's variables set).
func checkAgentCommon(t *testing.T, ds *appsv1.DaemonSet, sa, image string, watched []string) *agent.Options {
	t.Helper()
	spec := ds.Spec.Template.Spec
	c := spec.Containers[0]
	if spec.ServiceAccountName != sa {
		t.Errorf("%s runs as the ServiceAccount %q, want %q", ds.Name, spec.ServiceAccountName, sa)
	}
	if spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken {
		t.Errorf("%s does not mount its ServiceAccount token; the agent talks to the apiserver", ds.Name)
	}
	if c.Image != image || !slices.Equal(c.Command, []string{"/homelab-agent"}) {
		t.Errorf("%s runs %v from %s, want /homelab-agent from the manager's image %s", ds.Name, c.Command, c.Image, image)
	}
	if spec.HostPID || spec.HostIPC {
		t.Errorf("%s shares the host's PID or IPC namespace", ds.Name)
	}
	downward := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			downward[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if downward["NODE_NAME"] != "spec.nodeName" || downward["POD_NAME"] != "metadata.name" {
		t.Errorf("%s: NODE_NAME and POD_NAME must come from spec.nodeName and metadata.name, have %v", ds.Name, downward)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.LivenessProbe.HTTPGet.Port.String() != "health" ||
		c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.ReadinessProbe.HTTPGet.Port.String() != "health" {
		t.Errorf("%s needs /healthz and /readyz probes on the port named health", ds.Name)
	}

	// The agent's own flag set parses and validates the arguments, as in the pod.
	t.Setenv("NODE_NAME", "node-1")
	t.Setenv("POD_NAME", ds.Name+"-x1")
	fs := flag.NewFlagSet("homelab-agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o, _ := agent.BindFlags(fs)
	if err := fs.Parse(c.Args); err != nil {
		t.Fatalf("the agent refuses the arguments of %s %v: %v", ds.Name, c.Args, err)
	}
	for flagName, port := range map[string]string{"--health-probe-bind-address": "health", "--metrics-bind-address": "metrics"} {
		addr := flagValue(c.Args, flagName)
		if addr == "0" && port == "metrics" {
			continue
		}
		if addr != ":"+strconv.Itoa(int(ports[port])) || ports[port] == 0 {
			t.Errorf("%s: %s=%s is not the container port %s (%d)", ds.Name, flagName, addr, port, ports[port])
		}
	}
	if got := flagValue(c.Args, "--namespace"); got != strings.Join(watched, ",") {
		t.Errorf("%s: --namespace=%q, want the watched namespaces %q", ds.Name, got, strings.Join(watched, ","))
	}
	valid := *o
	if o.Shutdown == agent.ShutdownLogind {
		// The socket is the host's: checkShutdownAgent checks that the pod mounts it at
		// --dbus-socket, and a socket of the test's stands in for it here.
		valid.DBusSocket = listenUnix(t)
	}
	if err := valid.Validate(); err != nil {
		t.Errorf("the agent refuses the arguments of %s %v: %v", ds.Name, c.Args, err)
	}
	return o
}

// checkWakeAgent: the host network (the magic packets leave on the node's LAN), the segment's
// nodes, and otherwise the restricted standard's pod security: a non-root user, no capability,
// no privilege escalation, a read-only root, RuntimeDefault seccomp, and no host path.
func checkWakeAgent(t *testing.T, ds *appsv1.DaemonSet, nodeSelector map[string]string) {
	t.Helper()
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("%s: hostNetwork %v, dnsPolicy %q; want the host network with ClusterFirstWithHostNet", ds.Name, spec.HostNetwork, spec.DNSPolicy)
	}
	if nodeSelector == nil || !maps.Equal(spec.NodeSelector, nodeSelector) {
		t.Errorf("%s runs on the nodes %v, want its segment's %v", ds.Name, spec.NodeSelector, nodeSelector)
	}
	if len(spec.Volumes) != 0 || len(spec.Containers[0].VolumeMounts) != 0 {
		t.Errorf("%s mounts %v; the wake relay needs no volume", ds.Name, spec.Volumes)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.RunAsGroup == nil || *psc.RunAsGroup != 65532 {
		t.Errorf("%s must run as the non-root 65532:65532, pod securityContext %+v", ds.Name, psc)
	}
	checkLocked(t, ds)
}

// checkShutdownAgent: uid 0 without privileges or capabilities, the host's D-Bus socket (and no
// other host path) read-only at the agent's --dbus-socket, no host network, and only on the nodes
// of Machines.
func checkShutdownAgent(t *testing.T, ds *appsv1.DaemonSet, o *agent.Options) {
	t.Helper()
	spec := ds.Spec.Template.Spec
	if spec.HostNetwork {
		t.Errorf("%s is on the host network; it needs only the apiserver and the bus socket", ds.Name)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || *psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 0 ||
		psc.RunAsGroup == nil || *psc.RunAsGroup != 0 {
		t.Errorf("%s must run as uid and gid 0 (logind powers off for root callers), pod securityContext %+v", ds.Name, psc)
	}
	if len(spec.Volumes) != 1 || spec.Volumes[0].HostPath == nil {
		t.Fatalf("%s: volumes %v, want the bus socket's hostPath alone", ds.Name, spec.Volumes)
	}
	v, mounts := spec.Volumes[0], spec.Containers[0].VolumeMounts
	if v.HostPath.Path != agent.DefaultDBusSocket || v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathSocket {
		t.Errorf("%s mounts the host path %s (type %v), want the socket %s", ds.Name, v.HostPath.Path, v.HostPath.Type, agent.DefaultDBusSocket)
	}
	if len(mounts) != 1 || mounts[0].Name != v.Name || mounts[0].MountPath != o.DBusSocket || !mounts[0].ReadOnly || mounts[0].SubPath != "" {
		t.Errorf("%s mounts %v, want %s read-only at the agent's --dbus-socket %s", ds.Name, mounts, v.Name, o.DBusSocket)
	}
	terms := spec.Affinity
	if terms == nil || terms.NodeAffinity == nil || terms.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil ||
		!reflect.DeepEqual(terms.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms, []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: infrav1.LabelMachine, Operator: corev1.NodeSelectorOpExists}},
		}}) {
		t.Errorf("%s must run only on the Nodes of Machines (label %s), affinity %+v", ds.Name, infrav1.LabelMachine, terms)
	}
	checkLocked(t, ds)
}

// checkLocked checks what both agents' containers share: not privileged, no privilege escalation,
// every capability dropped and none added, a read-only root filesystem, RuntimeDefault seccomp.
func checkLocked(t *testing.T, ds *appsv1.DaemonSet) {
	t.Helper()
	psc := ds.Spec.Template.Spec.SecurityContext
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccomp profile must be RuntimeDefault, pod securityContext %+v", ds.Name, psc)
	}
	sc := ds.Spec.Template.Spec.Containers[0].SecurityContext
	if sc == nil {
		t.Fatalf("%s has no container securityContext", ds.Name)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s is privileged", ds.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s allows privilege escalation", ds.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: the root filesystem must be read-only", ds.Name)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("%s: capabilities %+v, want ALL dropped and none added", ds.Name, sc.Capabilities)
	}
	if sc.RunAsUser != nil || sc.RunAsNonRoot != nil || sc.SeccompProfile != nil {
		t.Errorf("%s: the container overrides the pod's user or seccomp profile: %+v", ds.Name, sc)
	}
}

// listenUnix returns the path of a listening Unix socket, closed at the end of the test.
func listenUnix(t *testing.T) string {
	t.Helper()
	// Short: a socket path is limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "bus")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "system_bus_socket")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return path
}

// checkAgentRights asks the apiserver's authorizer, one SubjectAccessReview per question, what
// the agents' ServiceAccount may do once the rendered RBAC is applied: get, list and watch
// AgentRequests and update their status, in the watched namespaces alone (every namespace when
// watched is nil), and nothing else: no other verb on requests or their status, nothing on
// Machines, Groups, Secrets, ConfigMaps, Pods, Leases, Events, Jobs or Nodes.
func checkAgentRights(t *testing.T, namespace, sa string, watched []string) {
	t.Helper()
	isWatched := func(ns string) bool { return watched == nil || (ns != "" && slices.Contains(watched, ns)) }
	probes := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(watched), namespace, "default", "kube-system", ""))))
	never := []struct{ group, resource, subresource string }{
		{infraGroup, "machines", ""}, {infraGroup, "machines", "status"}, {infraGroup, "groups", ""}, {infraGroup, "groups", "status"},
		{"", "secrets", ""}, {"", "configmaps", ""}, {"", "pods", ""}, {"", "pods", "eviction"}, {"", "events", ""},
		{"", "serviceaccounts", "token"}, {"events.k8s.io", "events", ""}, {"coordination.k8s.io", "leases", ""},
		{"batch", "jobs", ""}, {"apps", "daemonsets", ""}, {"rbac.authorization.k8s.io", "rolebindings", ""},
	}
	var checks []access
	for _, ns := range probes {
		for _, verb := range everyVerb {
			checks = append(checks,
				access{verb: verb, group: infraGroup, resource: "agentrequests", namespace: ns,
					allowed: isWatched(ns) && slices.Contains([]string{"get", "list", "watch"}, verb)},
				access{verb: verb, group: infraGroup, resource: "agentrequests", subresource: "status", namespace: ns,
					allowed: isWatched(ns) && verb == "update"})
			for _, r := range never {
				checks = append(checks, access{verb: verb, group: r.group, resource: r.resource, subresource: r.subresource, namespace: ns})
			}
		}
	}
	for _, verb := range everyVerb {
		checks = append(checks,
			access{verb: verb, resource: "nodes"},
			access{verb: verb, resource: "namespaces"},
			access{verb: verb, group: "apiextensions.k8s.io", resource: "customresourcedefinitions"},
			access{verb: verb, group: "authentication.k8s.io", resource: "tokenreviews"},
			access{verb: verb, group: "authorization.k8s.io", resource: "subjectaccessreviews"},
		)
	}
	checkAccess(t, namespace, sa, checks)
}

// checkAgentsServe runs both agents of objs in this process, with their DaemonSets' arguments
// and as their ServiceAccount (impersonated), and has each serve a request in the watched
// namespace: the rights checkAgentRights allows are the rights the agents need. The shutdown
// agent powers off with a command that leaves a mark instead of through logind, which is the
// host's; its API calls are the same. Controller names are unique per process: it runs once.
func checkAgentsServe(t *testing.T, objs manifests, namespace, sa, watched string) {
	t.Helper()
	ctrl.SetLogger(logr.Discard())
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + namespace + ":" + sa,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	t.Cleanup(func() { cancel(); running.Wait() })
	start := func(ds *appsv1.DaemonSet, node string, adjust func(*agent.Options)) {
		t.Setenv("NODE_NAME", node)
		t.Setenv("POD_NAME", ds.Name+"-x1")
		fs := flag.NewFlagSet("homelab-agent", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o, _ := agent.BindFlags(fs)
		if err := fs.Parse(ds.Spec.Template.Spec.Containers[0].Args); err != nil {
			t.Fatal(err)
		}
		// The ports are the node's; both agents share this process.
		o.MetricsAddr, o.ProbeAddr = "0", "0"
		adjust(o)
		m, err := agent.NewManager(cfg, *o)
		if err != nil {
			t.Fatalf("the agent of %s: %v", ds.Name, err)
		}
		running.Add(1)
		go func() {
			defer running.Done()
			if err := m.Start(ctx); err != nil {
				t.Errorf("the agent of %s: %v", ds.Name, err)
			}
		}()
	}
	var wake, shutdown *appsv1.DaemonSet
	for _, u := range objs.find("DaemonSet", "") {
		ds := into[appsv1.DaemonSet](t, u)
		args := ds.Spec.Template.Spec.Containers[0].Args
		switch {
		case flagValue(args, "--segment") != "" && wake == nil:
			wake = ds
		case flagValue(args, "--shutdown") == agent.ShutdownLogind:
			shutdown = ds
		}
	}
	if wake == nil || shutdown == nil {
		t.Fatal("want a wake relay and a shutdown agent")
	}
	start(wake, "relay-node", func(*agent.Options) {})
	off := filepath.Join(t.TempDir(), "off")
	poweroff := filepath.Join(t.TempDir(), "poweroff")
	if err := os.WriteFile(poweroff, []byte("#!/bin/sh\ntouch "+off+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	start(shutdown, "machine-node", func(o *agent.Options) { o.Shutdown, o.ShutdownCommand = agent.ShutdownCommand, poweroff })

	nic, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nic.Close() })
	packets := make(chan []byte, 8)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := nic.ReadFromUDP(buf)
			if err != nil {
				close(packets)
				return
			}
			select {
			case packets <- bytes.Clone(buf[:n]):
			default:
			}
		}
	}()
	const mac = "52:54:00:12:34:56"
	deadline := time.Now().Add(time.Minute)
	w, err := relay.Request(ctx, env.Client, relay.Wake{
		Namespace: watched, Machine: "relayed", Segment: flagValue(wake.Spec.Template.Spec.Containers[0].Args, "--segment"),
		MAC: mac, Target: nic.LocalAddr().String(), Attempt: 1, Started: time.Now(), Deadline: deadline,
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := relay.RequestShutdown(ctx, env.Client, relay.Shutdown{
		Namespace: watched, Machine: "stopped", Node: "machine-node", Attempt: 1, Started: time.Now(), Deadline: deadline,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*infrav1.AgentRequest{w, s} {
		testenv.Eventually(t, time.Minute, "the agents to serve "+r.Name, func() bool {
			got := &infrav1.AgentRequest{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(r), got); err != nil {
				t.Fatal(err)
			}
			return got.Status.State == infrav1.AgentRequestDone
		})
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte{0xFF}, 6), bytes.Repeat(hw, 16)...)
	if got := <-packets; !bytes.Equal(got, want) {
		t.Errorf("the wake relay sent % x, want the magic packet for %s", got, mac)
	}
	testenv.Eventually(t, time.Minute, "the shutdown agent's power-off command", func() bool {
		_, err := os.Stat(off)
		return err == nil
	})
}
