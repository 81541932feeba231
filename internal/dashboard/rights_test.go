package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// A user who may only read Groups and Machines (and one ConfigMap by name) sees them, is told
// that the Events and another ConfigMap are not readable, and cannot power a machine through the
// dashboard: it adds no rights of its own.
func TestDashboardHasOnlyTheUsersRights(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "dash-rights")
	readable := types.NamespacedName{Namespace: "kube-system", Name: "ca-status-" + ns}
	objs := []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: readable.Namespace, Name: readable.Name}, Data: map[string]string{"status": "Cluster-wide:\n  Health: Healthy"}},
		// Reading one ConfigMap by name: list and watch with a metadata.name field selector are
		// authorized against resourceNames.
		&rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: readable.Namespace, Name: readable.Name},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{readable.Name}, Verbs: []string{"get", "list", "watch"}}},
		},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: readable.Namespace, Name: readable.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: readable.Name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "homelab-viewer"}},
		},
		&infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workers"}},
		&infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workers-0"}, Spec: infrav1.MachineSpec{Group: "workers"}},
		&rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "homelab-viewer"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{infrav1.GroupVersion.Group}, Resources: []string{"groups", "machines"}, Verbs: []string{"get", "list", "watch"}}},
		},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "homelab-viewer"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "homelab-viewer"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "homelab-viewer"}},
		},
	}
	for _, o := range objs {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, o) })
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "homelab-viewer"}
	viewer, err := client.NewWithWatch(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	d := serve(t, Options{Client: viewer, Namespace: ns, AllowPower: true,
		CAStatus: types.NamespacedName{Namespace: "kube-system", Name: "cluster-autoscaler-status"}})

	snap := d.snapshotNow(t)
	if len(snap.Groups) != 1 || len(snap.Machines) != 1 || snap.Machines[0].Name != "workers-0" || len(snap.Problems) != 0 {
		t.Errorf("groups %+v, machines %+v, problems %v", snap.Groups, snap.Machines, snap.Problems)
	}
	if snap.EventsProblem != "not readable (forbidden)" {
		t.Errorf("events: %q, want not readable (forbidden)", snap.EventsProblem)
	}
	if ca := snap.CAStatus; ca.State != "unreadable" || ca.Message != "not readable (forbidden)" {
		t.Errorf("cluster-autoscaler's status: %+v, want not readable (forbidden)", ca)
	}
	if snap.CloudProvider.Configured {
		t.Error("the cloud provider is shown without a gRPC client")
	}
	if ca := serve(t, Options{Client: viewer, Namespace: ns, CAStatus: readable}).snapshotNow(t).CAStatus; ca.State != "ok" || ca.Status != "Cluster-wide:\n  Health: Healthy" {
		t.Errorf("the status ConfigMap the user may read by name: %+v", ca)
	}

	code, page := d.request(t, http.MethodGet, "/", nil, "")
	token := regexp.MustCompile(`name="dashboard-token" content="([^"]+)"`).FindStringSubmatch(page)
	if code != http.StatusOK || token == nil {
		t.Fatalf("the page (%d) has no token:\n%s", code, page)
	}
	code, body := d.request(t, http.MethodPost, "/api/power", map[string]string{"Content-Type": "application/json", TokenHeader: token[1]},
		fmt.Sprintf(`{"namespace": %q, "name": "workers-0", "online": true}`, ns))
	var refusal map[string]string
	if err := json.Unmarshal([]byte(body), &refusal); err != nil || code != http.StatusForbidden || !strings.Contains(refusal["error"], "forbidden") {
		t.Errorf("powering on without the right to update Machines: %d %s, want the apiserver's 403", code, body)
	}
	m := &infrav1.Machine{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "workers-0"}, m); err != nil {
		t.Fatal(err)
	}
	if m.Spec.Online {
		t.Error("the machine was powered on with rights the user does not have")
	}
}
