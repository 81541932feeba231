package app_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv/testmanager"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Run(m, func(e *testenv.Env) { env = e })
}

// TestManagerWithLeastPrivilege runs the manager as the command builds it (app.New), acting as a
// ServiceAccount bound only to the generated roles, as the default install binds them: the
// cluster-wide ClusterRole with a ClusterRoleBinding, leader election's Role in the manager's own
// namespace, and the namespaced ClusterRole with a RoleBinding in each of the two watched
// namespaces (--namespace=a,b), which are not the manager's own. That the cache syncs at all also
// shows the manager starts no cluster-wide informer of a namespaced kind (it could not list it).
// It shows, in order: a replica that is not leading is ready and serves gRPC, with the Groups of
// the watched namespaces and not the one in its own; the metrics endpoint refuses anonymous
// (401) and unauthorized (403) scrapes and serves an authorized one; once leading (creating the
// Lease, then renewing it by name), a scale-up through gRPC powers a machine on through the HTTP
// driver (credentials from a Secret), the core Node sync patches the core Node, the Group's
// status counts the machine Ready; a scale-up in the other watched namespace runs a power Job
// there; a human's power-off cordons, drains (evicting a pod in another namespace), switches the
// machine off and deletes its core Node; on stop the lease is released.
func TestManagerWithLeastPrivilege(t *testing.T) {
	ctx := context.Background()
	ns := createNamespace(t, "least-privilege")
	machines := createNamespace(t, "least-privilege-machines")
	lab := createNamespace(t, "least-privilege-lab")
	admin := env.Client

	// The manager's identity, bound to the generated roles only.
	for _, f := range []string{"config/rbac/role.yaml", "config/rbac/namespaced/role.yaml"} {
		applyGeneratedRoles(t, f, ns)
	}
	managerCfg := serviceAccountConfig(t, ns, "manager")
	managerSA := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "manager"}}
	mustCreate(t, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "least-privilege-manager"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "homelab-autoscaler-manager"},
		Subjects:   managerSA,
	})
	mustCreate(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "manager"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "homelab-autoscaler-manager"},
		Subjects:   managerSA,
	})
	for _, watched := range []string{machines, lab} {
		mustCreate(t, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: watched, Name: "manager"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "homelab-autoscaler-manager-namespaced"},
			Subjects:   managerSA,
		})
	}
	// A scraper allowed to get /metrics, and an authenticated identity that is not.
	scraperToken := serviceAccountConfig(t, ns, "scraper").BearerToken
	strangerToken := serviceAccountConfig(t, ns, "stranger").BearerToken
	mustCreate(t, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "least-privilege-metrics-reader"},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	})
	mustCreate(t, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "least-privilege-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "least-privilege-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "scraper"}},
	})

	// A smart plug: the HTTP driver's peer, which wants the token kept in a Secret.
	plug := &plug{}
	plugSrv := httptest.NewServer(plug)
	t.Cleanup(plugSrv.Close)
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: machines, Name: "plug", Labels: map[string]string{infrav1.LabelCredentials: "true"}},
		StringData: map[string]string{"Authorization": "Bearer plug-token"}})
	mustCreate(t, &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: machines, Name: "workers"}})
	httpAction := func(turn string) *infrav1.PowerDriver {
		return &infrav1.PowerDriver{HTTP: &infrav1.HTTPDriver{URL: plugSrv.URL + "/relay?turn=" + turn, HeadersSecretRef: &infrav1.SecretReference{Name: "plug"}}}
	}
	mustCreate(t, &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: machines, Name: "lp-1"}, Spec: infrav1.MachineSpec{
		Group: "workers", Online: false,
		Power: &infrav1.PowerSpec{Start: httpAction("on"), Stop: httpAction("off")},
	}})
	// The other watched namespace: a machine powered by Jobs.
	mustCreate(t, &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: lab, Name: "lab"}})
	jobAction := &infrav1.PowerDriver{Job: &infrav1.JobDriver{Image: "busybox", Command: []string{"true"}}}
	mustCreate(t, &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: lab, Name: "lp-job"}, Spec: infrav1.MachineSpec{
		Group: "lab", Online: false, Power: &infrav1.PowerSpec{Start: jobAction, Stop: jobAction},
	}})
	// The manager's own namespace is not watched: this Group is none of its business.
	mustCreate(t, &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unwatched"}})

	// Another replica leads, for as long as this lease says.
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: app.DefaultLeaderElectionID}, Spec: coordinationv1.LeaseSpec{
		HolderIdentity: ptr.To("another-replica"), LeaseDurationSeconds: ptr.To[int32](3600),
		AcquireTime: ptr.To(metav1.NowMicro()), RenewTime: ptr.To(metav1.NowMicro()),
	}}
	mustCreate(t, lease)

	o := options(t, ns)
	o.Namespace = machines + "," + lab
	if err := o.JobPolicy.Images.Set("busybox"); err != nil {
		t.Fatal(err)
	}
	ctrl.SetLogger(logr.FromSlogHandler(testenv.TestLogger(t, "manager").Handler()))
	began := time.Now()
	_, addr, stop := testmanager.Start(t, managerCfg, o)

	// Not leading, yet ready and serving.
	testenv.Eventually(t, 30*time.Second, "/readyz to pass on a replica that is not leading", func() bool {
		return httpStatus(t, "http://"+o.ProbeAddr+"/readyz", "") == http.StatusOK
	})
	ready := time.Since(began)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ca := pb.NewCloudProviderClient(conn)
	groups, err := ca.NodeGroups(ctx, &pb.NodeGroupsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range groups.GetNodeGroups() {
		ids = append(ids, g.GetId())
	}
	slices.Sort(ids)
	if want := []string{cloudprovider.GroupID(lab, "lab"), cloudprovider.GroupID(machines, "workers")}; !slices.Equal(ids, want) {
		t.Fatalf("NodeGroups = %v; want the watched namespaces' groups %v", ids, want)
	}
	if holder := leaseHolder(t, ns); holder != "another-replica" {
		t.Fatalf("the lease changed hands (%q) before the checks of a replica that is not leading ended", holder)
	}

	// The metrics endpoint, as Prometheus would scrape it.
	metricsURL := "https://" + o.MetricsAddr + "/metrics"
	// It listens once it has generated its self-signed certificate.
	testenv.Eventually(t, 30*time.Second, "the metrics endpoint to listen", func() bool { return httpStatus(t, metricsURL, "") != 0 })
	if code := httpStatus(t, metricsURL, ""); code != http.StatusUnauthorized {
		t.Errorf("anonymous scrape: status %d, want 401", code)
	}
	if code := httpStatus(t, metricsURL, strangerToken); code != http.StatusForbidden {
		t.Errorf("scrape by an identity without get on /metrics: status %d, want 403", code)
	}
	body := scrape(t, metricsURL, scraperToken)
	for _, want := range []string{"homelab_autoscaler_grpc_requests_total{", "controller_runtime_"} {
		if !strings.Contains(body, want) {
			t.Errorf("authorized scrape lacks %q", want)
		}
	}

	// The other replica is gone: this one takes the lease and runs the controllers.
	if err := admin.Delete(ctx, lease); err != nil {
		t.Fatal(err)
	}
	lead := testenv.Eventually(t, 30*time.Second, "the manager to take the lease", func() bool { return leaseHolder(t, ns) != "" })
	if _, err := ca.NodeGroupIncreaseSize(ctx, &pb.NodeGroupIncreaseSizeRequest{Id: cloudprovider.GroupID(machines, "workers"), Delta: 1}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the plug to be switched on with the Secret's token", func() bool { return plug.saw("on") })
	registerCoreNode(t, machines, "lp-1") // the machine boots and its kubelet registers
	setCoreNodeReady(t, "lp-1", true)
	testenv.Eventually(t, 30*time.Second, "the Group to count the machine Ready", func() bool {
		g := &infrav1.Group{}
		return admin.Get(ctx, client.ObjectKey{Namespace: machines, Name: "workers"}, g) == nil && g.Status.Ready == 1
	})
	core := &corev1.Node{}
	if err := admin.Get(ctx, client.ObjectKey{Name: "lp-1"}, core); err != nil || core.Spec.ProviderID != "homelab://"+machines+"/lp-1" {
		t.Fatalf("core Node providerID %q (%v): the core Node sync did not patch it", core.Spec.ProviderID, err)
	}
	if _, err := ca.NodeGroupIncreaseSize(ctx, &pb.NodeGroupIncreaseSizeRequest{Id: cloudprovider.GroupID(lab, "lab"), Delta: 1}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the power-on Job in the other watched namespace", func() bool {
		jobs := &batchv1.JobList{}
		return admin.List(ctx, jobs, client.InNamespace(lab), client.MatchingLabels{
			infrav1.LabelMachine: "lp-job", infrav1.LabelPowerAction: "on",
		}) == nil && len(jobs.Items) > 0
	})

	// A human powers the machine off: the manager cordons and drains it (evicting a pod of
	// another namespace), switches the plug off, sees the core Node go NotReady and deletes it.
	workloads := createNamespace(t, "least-privilege-workloads")
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: workloads, Name: "app"}, Spec: corev1.PodSpec{
		NodeName: "lp-1", Containers: []corev1.Container{{Name: "app", Image: "busybox"}},
	}}
	mustCreate(t, pod)
	if _, err := optimistic.Update(ctx, testWriter(t), &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Namespace: machines, Name: "lp-1"}}, func(n *infrav1.Machine) error {
		n.Spec.Online = false
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the drain to evict the pod", func() bool {
		err := admin.Get(ctx, client.ObjectKeyFromObject(pod), pod)
		if err == nil && !pod.DeletionTimestamp.IsZero() {
			// The kubelet's part: the evicted pod's containers stopped.
			_ = admin.Delete(ctx, pod, client.GracePeriodSeconds(0))
		}
		return apierrors.IsNotFound(err)
	})
	testenv.Eventually(t, 30*time.Second, "the plug to be switched off", func() bool { return plug.saw("off") })
	setCoreNodeReady(t, "lp-1", false)
	testenv.Eventually(t, 30*time.Second, "the powered-off machine's core Node to be deleted", func() bool {
		return apierrors.IsNotFound(admin.Get(ctx, client.ObjectKey{Name: "lp-1"}, &corev1.Node{}))
	})

	stopStart := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("manager stopped with %v", err)
		}
		t.Logf("ready %s after start while not leading; leading %s after the other lease went; stopped %s after cancel",
			ready.Round(time.Millisecond), lead.Round(time.Millisecond), time.Since(stopStart).Round(time.Millisecond))
	case <-time.After(o.ShutdownTimeout + 5*time.Second):
		t.Fatal("the manager did not stop within its shutdown timeout")
	}
	if holder := leaseHolder(t, ns); holder != "" {
		t.Errorf("lease still held by %q after the manager stopped; it should release it", holder)
	}
}

// options are a test's manager options (the command's defaults) with the metrics endpoint
// (HTTPS, as by default) and the probes on known loopback addresses, leader election in ns,
// and short power retries.
func options(t *testing.T, ns string) app.Options {
	t.Helper()
	o := testmanager.Options(ns)
	o.MetricsAddr, o.ProbeAddr = freeAddr(t), freeAddr(t)
	o.LeaderElect, o.LeaderElectionNamespace = true, ns
	o.LeaderElectRetryPeriod = 500 * time.Millisecond
	o.PowerRetryBase, o.PowerConfirmInterval = 200*time.Millisecond, 200*time.Millisecond
	return o
}

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

type plug struct {
	mu   sync.Mutex
	seen []string
}

func (p *plug) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer plug-token" {
		http.Error(w, "who are you", http.StatusUnauthorized)
		return
	}
	p.mu.Lock()
	p.seen = append(p.seen, r.URL.Query().Get("turn"))
	p.mu.Unlock()
}

func (p *plug) saw(turn string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.seen {
		if s == turn {
			return true
		}
	}
	return false
}

func createNamespace(t *testing.T, name string) string {
	t.Helper()
	mustCreate(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	return name
}

func mustCreate(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// applyGeneratedRoles creates the ClusterRoles and Roles of a generated manifest of the
// repository, a Role in ns (the manager's own namespace) whatever namespace the file names.
func applyGeneratedRoles(t *testing.T, rel, ns string) {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		var kind struct{ Kind string }
		if err := yaml.Unmarshal(doc, &kind); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		var obj client.Object
		switch kind.Kind {
		case "":
			continue // the empty document before the first ---
		case "ClusterRole":
			obj = &rbacv1.ClusterRole{}
		case "Role":
			obj = &rbacv1.Role{}
		default:
			t.Fatalf("%s: unexpected %s", rel, kind.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if _, ok := obj.(*rbacv1.Role); ok {
			obj.SetNamespace(ns)
		}
		mustCreate(t, obj)
	}
}

// serviceAccountConfig creates a ServiceAccount and returns a client configuration that
// authenticates as it with a token from the TokenRequest API, as a pod's projected token does.
func serviceAccountConfig(t *testing.T, ns, name string) *rest.Config {
	t.Helper()
	ctx := context.Background()
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
	tr, err := env.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = tr.Status.Token
	cfg.QPS, cfg.Burst = 100, 200
	return cfg
}

func leaseHolder(t *testing.T, ns string) string {
	t.Helper()
	l := &coordinationv1.Lease{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: app.DefaultLeaderElectionID}, l); err != nil {
		return ""
	}
	return ptr.Deref(l.Spec.HolderIdentity, "")
}

// registerCoreNode plays a kubelet registering its core Node (without a providerID), opted in to
// the machines of namespace ns.
func registerCoreNode(t *testing.T, ns, name string) {
	t.Helper()
	mustCreate(t, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{infrav1.LabelNamespace: ns}}})
}

// setCoreNodeReady plays the kubelet's status update.
func setCoreNodeReady(t *testing.T, name string, ready bool) {
	t.Helper()
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	if _, err := optimistic.UpdateStatus(context.Background(), testWriter(t), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, func(n *corev1.Node) error {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status, Reason: "Kubelet",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
		n.Status.Capacity = corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// testWriter writes as the test's humans and kubelets do: optimistically, as an administrator.
func testWriter(t *testing.T) *optimistic.Writer {
	t.Helper()
	w, err := optimistic.New(env.Client, env.Client, optimistic.WithMetrics(optimistic.NewMetrics()))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// insecureHTTP trusts the metrics endpoint's self-signed certificate.
var insecureHTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the endpoint's certificate is self-signed in this test
}}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := insecureHTTP.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func httpStatus(t *testing.T, url, token string) int {
	t.Helper()
	code, _ := get(t, url, token)
	return code
}

func scrape(t *testing.T, url, token string) string {
	t.Helper()
	code, body := get(t, url, token)
	if code != http.StatusOK {
		t.Fatalf("authorized scrape: status %d: %s", code, body)
	}
	return body
}

func TestOptionsValidate(t *testing.T) {
	defaults, _ := app.BindFlags(newFlagSet())
	if err := defaults.Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	for name, mutate := range map[string]func(*app.Options){
		"lease not longer than renew deadline": func(o *app.Options) { o.LeaderElect, o.LeaderElectLeaseDuration = true, 10*time.Second },
		"renew deadline not longer than retry": func(o *app.Options) { o.LeaderElect, o.LeaderElectRetryPeriod = true, 10*time.Second },
		"zero shutdown timeout":                func(o *app.Options) { o.ShutdownTimeout = 0 },
		"write retry cap below base":           func(o *app.Options) { o.WriteRetryBackoff.Cap = time.Millisecond },
		"namespace not a name":                 func(o *app.Options) { o.Namespace = "machines,Lab" },
		"namespace list with a blank":          func(o *app.Options) { o.Namespace = "machines,,lab" },
		"namespace named twice":                func(o *app.Options) { o.Namespace = "machines,lab,machines" },
	} {
		o := *defaults
		mutate(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
