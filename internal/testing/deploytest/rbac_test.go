package deploytest_test

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
)

// everyVerb is what each kind is asked for: a verb the manager does not need must be refused.
var everyVerb = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}

// watchedRules are the manager's rights in a namespace it watches, and nowhere else.
var watchedRules = []struct {
	group, resource, subresource string
	verbs                        []string
}{
	{"", "secrets", "", []string{"get"}},
	{"", "configmaps", "", []string{"get"}},
	{"batch", "jobs", "", []string{"get", "list", "watch", "create", "delete"}},
	{infraGroup, "groups", "", []string{"get", "list", "watch", "patch"}},
	{infraGroup, "machines", "", []string{"get", "list", "watch", "patch"}},
	{infraGroup, "groups", "status", []string{"get", "patch"}},
	{infraGroup, "machines", "status", []string{"get", "patch"}},
	{"events.k8s.io", "events", "", []string{"create", "patch"}},
}

// checkManagerRights asks the apiserver's authorizer, one SubjectAccessReview per question, what
// the manager Deployment d's ServiceAccount may do once the rendered RBAC is applied, and fails on
// any difference from what it needs: Groups, Machines, Secrets (get only), ConfigMaps (get only),
// Jobs and events.k8s.io Events in the watched namespaces alone (every namespace when watched is
// nil); its leader Lease by name, and Lease creation and core Events, in its own namespace alone;
// cluster-wide, Nodes (no update), Pods (list only), evictions, token and access reviews. The
// watched namespaces and the Lease are read from the Deployment's arguments, so the rights are
// checked against what the manager actually uses.
func checkManagerRights(t *testing.T, d *appsv1.Deployment, watched []string) {
	t.Helper()
	own, sa := d.Namespace, d.Spec.Template.Spec.ServiceAccountName
	args := d.Spec.Template.Spec.Containers[0].Args
	if got := flagValue(args, "--namespace"); got != strings.Join(watched, ",") {
		t.Fatalf("manager --namespace=%q, want %q", got, strings.Join(watched, ","))
	}
	lease := flagValue(args, "--leader-election-id")
	if lease == "" {
		lease = app.DefaultLeaderElectionID
	}
	if ns := flagValue(args, "--leader-election-namespace"); ns != "" && ns != own {
		t.Fatalf("the leader Lease is in %s, not the manager's namespace %s", ns, own)
	}
	leading := slices.Contains(args, "--leader-elect")
	isWatched := func(ns string) bool { return watched == nil || (ns != "" && slices.Contains(watched, ns)) }
	isOwn := func(ns string) bool { return leading && ns == own }

	// "" asks for a cluster-wide grant (every namespace at once).
	probes := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(watched), own, "default", "kube-system", ""))))
	var checks []access
	for _, ns := range probes {
		for _, verb := range everyVerb {
			for _, r := range watchedRules {
				checks = append(checks, access{verb: verb, group: r.group, resource: r.resource, subresource: r.subresource, namespace: ns,
					allowed: isWatched(ns) && slices.Contains(r.verbs, verb)})
			}
			checks = append(checks,
				// The Lease by name: get and renew it. RBAC cannot limit create by name.
				access{verb: verb, group: "coordination.k8s.io", resource: "leases", name: lease, namespace: ns,
					allowed: isOwn(ns) && slices.Contains([]string{"get", "update", "create"}, verb)},
				access{verb: verb, group: "coordination.k8s.io", resource: "leases", name: "another-lease", namespace: ns,
					allowed: isOwn(ns) && verb == "create"},
				access{verb: verb, group: "coordination.k8s.io", resource: "leases", namespace: ns,
					allowed: isOwn(ns) && verb == "create"},
				// Leader election's Events, on the Lease.
				access{verb: verb, resource: "events", namespace: ns, allowed: isOwn(ns) && (verb == "create" || verb == "patch")},
				// A drain lists a node's pods in every namespace and evicts them.
				access{verb: verb, resource: "pods", namespace: ns, allowed: verb == "list"},
				access{verb: verb, resource: "pods", subresource: "eviction", namespace: ns, allowed: verb == "create"},
				// Nothing else namespaced: a sample of what would let it escalate.
				access{verb: verb, resource: "serviceaccounts", subresource: "token", namespace: ns},
				access{verb: verb, group: "rbac.authorization.k8s.io", resource: "rolebindings", namespace: ns},
				access{verb: verb, group: "apps", resource: "deployments", namespace: ns},
			)
		}
	}
	for _, verb := range everyVerb {
		checks = append(checks,
			access{verb: verb, resource: "nodes", allowed: slices.Contains([]string{"get", "list", "watch", "patch", "delete"}, verb)},
			access{verb: verb, resource: "namespaces"},
			access{verb: verb, group: "apiextensions.k8s.io", resource: "customresourcedefinitions"},
			access{verb: verb, group: "authentication.k8s.io", resource: "tokenreviews", allowed: verb == "create"},
			access{verb: verb, group: "authorization.k8s.io", resource: "subjectaccessreviews", allowed: verb == "create"},
		)
	}
	checkAccess(t, own, sa, checks)
}

// TestKustomizeAllNamespaces renders config/all-namespaces and checks that it is config/default
// with the watched namespace's binding made cluster-wide and --namespace removed, and nothing
// else. (Its rights are asked of the apiserver in TestChartAllNamespaces, whose objects are the
// same but for their names: applying these would grant config/default's ServiceAccount, which
// other tests question, every namespace.)
func TestKustomizeAllNamespaces(t *testing.T) {
	byKey := func(objs manifests) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, u := range objs {
			out[u.GetKind()+"/"+u.GetNamespace()+"/"+u.GetName()] = u.Object
		}
		return out
	}
	def, all := byKey(kustomize(t, "config/default")), byKey(kustomize(t, "config/all-namespaces"))
	const (
		binding = "RoleBinding/homelab-machines/homelab-autoscaler-manager-namespaced"
		wide    = "ClusterRoleBinding//homelab-autoscaler-manager-namespaced"
		manager = "Deployment/homelab-autoscaler/homelab-autoscaler"
	)
	for _, key := range slices.Sorted(maps.Keys(def)) {
		switch _, kept := all[key]; {
		case key == binding && kept:
			t.Errorf("config/all-namespaces keeps %s", key)
		case key != binding && !kept:
			t.Errorf("config/all-namespaces lacks %s", key)
		case kept && key != manager && !reflect.DeepEqual(def[key], all[key]):
			t.Errorf("config/all-namespaces changes %s", key)
		}
	}
	for key := range all {
		if _, ok := def[key]; !ok && key != wide {
			t.Errorf("config/all-namespaces adds %s", key)
		}
	}
	objs := kustomize(t, "config/all-namespaces")
	crb := into[rbacv1.ClusterRoleBinding](t, objs.one(t, "ClusterRoleBinding", "homelab-autoscaler-manager-namespaced"))
	if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != "homelab-autoscaler-manager-namespaced" ||
		len(crb.Subjects) != 1 || crb.Subjects[0].Name != "homelab-autoscaler" || crb.Subjects[0].Namespace != "homelab-autoscaler" {
		t.Errorf("the cluster-wide binding binds %v to %v, want the manager's ServiceAccount to the namespaced ClusterRole", crb.Subjects, crb.RoleRef)
	}
	d := into[appsv1.Deployment](t, objs.one(t, "Deployment", "homelab-autoscaler"))
	checkManager(t, d, 2)
	wantArgs := slices.DeleteFunc(slices.Clone(into[appsv1.Deployment](t, kustomize(t, "config/default").one(t, "Deployment", "homelab-autoscaler")).Spec.Template.Spec.Containers[0].Args),
		func(a string) bool { return strings.HasPrefix(a, "--namespace=") })
	if got := d.Spec.Template.Spec.Containers[0].Args; !slices.Equal(got, wantArgs) {
		t.Errorf("manager args %v, want config/default's without --namespace: %v", got, wantArgs)
	}
}

// TestChartAllNamespaces installs the chart watching every namespace and asks what its manager
// may do: the watched namespaces' rights everywhere, the rest as in the default.
func TestChartAllNamespaces(t *testing.T) {
	ensureNamespace(t, "chart-wide", restricted)
	objs := helmTemplate(t, "wide", "chart-wide", "--set", "watchAllNamespaces=true")
	if n := len(objs.find("RoleBinding", "wide-homelab-autoscaler-manager-namespaced")); n != 0 {
		t.Errorf("watching every namespace renders %d namespaced bindings", n)
	}
	apply(t, objs)
	d := into[appsv1.Deployment](t, objs.one(t, "Deployment", "wide-homelab-autoscaler"))
	checkManager(t, d, 2)
	checkManagerRights(t, d, nil)
}

// TestChartWithoutLeaderElection: one replica without leader election gets no Lease rights.
func TestChartWithoutLeaderElection(t *testing.T) {
	objs := helmTemplate(t, "single", "chart-single", "--set", "replicas=1,leaderElection.enabled=false")
	if n := len(objs.find("Role", "")) + len(objs.find("RoleBinding", "single-homelab-autoscaler-leader-election")); n != 0 {
		t.Errorf("without leader election the chart renders %d leader election Roles and bindings", n)
	}
	d := into[appsv1.Deployment](t, objs.one(t, "Deployment", "single-homelab-autoscaler"))
	if slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--leader-elect") {
		t.Error("leaderElection.enabled=false still passes --leader-elect")
	}
}
