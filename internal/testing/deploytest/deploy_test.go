package deploytest_test

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
)

const infraGroup = "infra.homelab-autoscaler.dev"

// TestKustomizeDefault installs config/default: everything the manager needs, watching the
// namespace homelab-machines (which the install expects to exist) and holding rights there and,
// for leader election, in its own namespace alone.
func TestKustomizeDefault(t *testing.T) {
	ensureNamespace(t, "homelab-machines", nil)
	objs := kustomize(t, "config/default")
	if n := len(objs.find("Namespace", "homelab-machines")); n != 0 {
		t.Error("config/default creates the watched namespace: deleting the install would delete its Secrets")
	}
	apply(t, objs)
	checkNoWebhook(t, objs)
	if n := len(objs.find("Certificate", "")) + len(objs.find("Issuer", "")); n != 0 {
		t.Errorf("config/default renders %d cert-manager objects; only the gRPC certificates of config/with-cert-manager need cert-manager", n)
	}
	d := into[appsv1.Deployment](t, objs.one(t, "Deployment", "homelab-autoscaler"))
	checkManager(t, d, 2)
	objs.one(t, "PodDisruptionBudget", "homelab-autoscaler")
	checkManagerRights(t, d, []string{"homelab-machines"})
}

// TestKustomizeWithClusterAutoscaler installs config/with-cluster-autoscaler and checks that
// cluster-autoscaler is wired to the manager: address, certificates, mounts.
func TestKustomizeWithClusterAutoscaler(t *testing.T) {
	ensureNamespace(t, "homelab-machines", nil)
	objs := kustomize(t, "config/with-cluster-autoscaler")
	// Moving cluster-autoscaler next to the manager must not move the manager's binding in its
	// watched namespace.
	if rb := objs.find("RoleBinding", "homelab-autoscaler-manager-namespaced"); len(rb) != 1 || rb[0].GetNamespace() != "homelab-machines" {
		t.Fatalf("the manager's watched-namespace binding is %d RoleBindings, not one in homelab-machines", len(rb))
	}
	apply(t, objs)
	checkWiring(t, objs, "homelab-autoscaler", "cluster-autoscaler")
	checkNoWebhook(t, objs)
	checkAccess(t, "homelab-autoscaler", "cluster-autoscaler", []access{
		{verb: "list", resource: "nodes", allowed: true},
		{verb: "update", resource: "configmaps", namespace: "homelab-autoscaler"},
		{verb: "create", resource: "configmaps", namespace: "homelab-autoscaler", allowed: true},
		{verb: "get", resource: "secrets", namespace: "homelab-autoscaler"},
	})
	// The other overlays build too.
	for _, overlay := range []string{"config/with-cert-manager", "config/cluster-autoscaler", "config/all-namespaces"} {
		rendered := kustomize(t, overlay)
		if len(rendered) == 0 {
			t.Errorf("%s renders nothing", overlay)
		}
		checkNoWebhook(t, rendered)
	}
}

// TestChartDefaults installs the chart with its default values: watching homelab-machines.
func TestChartDefaults(t *testing.T) {
	ensureNamespace(t, "chart-default", restricted)
	ensureNamespace(t, "homelab-machines", nil)
	objs := helmTemplate(t, "defaults", "chart-default")
	apply(t, objs)
	const name = "defaults-homelab-autoscaler"
	checkManager(t, into[appsv1.Deployment](t, objs.one(t, "Deployment", name)), 2)
	objs.one(t, "PodDisruptionBudget", name)
	if n := len(objs.find("Certificate", "")) + len(objs.find("ServiceMonitor", "")); n != 0 {
		t.Errorf("default values render %d cert-manager or monitoring objects", n)
	}
	checkNoWebhook(t, objs)
	if n := len(objs.find("Namespace", "")); n != 0 {
		t.Errorf("the chart renders %d Namespaces; uninstalling would delete them with the Secrets in them", n)
	}
	checkManagerRights(t, into[appsv1.Deployment](t, objs.one(t, "Deployment", name)), []string{"homelab-machines"})
}

// TestChartRefusesBrokenValues: value combinations that cannot work fail the rendering with a
// message that says what to set.
func TestChartRefusesBrokenValues(t *testing.T) {
	for _, c := range []struct{ set, message string }{
		{"clusterAutoscaler.enabled=true", "clusterAutoscaler.enabled needs grpc.tls.certManager.enabled or clusterAutoscaler.clientSecret"},
		{"grpc.tls.certManager.enabled=true,grpc.tls.existingSecret=mine", "either grpc.tls.certManager.enabled or grpc.tls.existingSecret"},
		{"leaderElection.enabled=false", "replicas above 1 need leaderElection.enabled"},
		{"grpc.tls.clientCommonName=", "the gRPC API needs the client certificates that may call: grpc.tls.clientCommonName or grpc.allowedClients (or grpc.allowAnyClient)"},
		{"grpc.allowAnyClient=true,grpc.allowedClients={cn:backup}", "set either grpc.allowAnyClient or grpc.allowedClients, not both"},
		{"grpc.tls.certManager.enabled=true,grpc.tls.clientCommonName=,grpc.allowedClients={cn:backup}",
			"grpc.tls.certManager.enabled needs grpc.tls.clientCommonName"},
		{"watchNamespace=homelab", "watchNamespace is gone: set watchNamespaces"},
		{"watchNamespaces=null", "watchNamespaces is empty"},
		{"watchNamespaces={homelab,default}", "watchNamespaces must not include the release namespace default"},
	} {
		t.Run(c.set, func(t *testing.T) {
			t.Parallel() // each is a separate helm process
			out, err := helm("template", "broken", "charts/homelab-autoscaler", "--set", c.set)
			if err == nil || !strings.Contains(out, c.message) {
				t.Errorf("err %v, output %q; want a failure saying %q", err, out, c.message)
			}
		})
	}
}

// TestChartGRPCAccess: the manager's --grpc-allowed-clients follows the chart's values, and the
// manager's own flag set accepts what is rendered.
func TestChartGRPCAccess(t *testing.T) {
	for _, c := range []struct {
		set  string
		want []string
		not  string
	}{
		{"", []string{"--grpc-allowed-clients=cn:cluster-autoscaler"}, "--grpc-allow-any-client"},
		{"grpc.tls.clientCommonName=ca-prod,grpc.allowedClients={uri:spiffe://cluster.local/ns/ops/sa/tool}",
			[]string{"--grpc-allowed-clients=cn:ca-prod,uri:spiffe://cluster.local/ns/ops/sa/tool"}, "--grpc-allow-any-client"},
		{"grpc.allowAnyClient=true", []string{"--grpc-allow-any-client"}, "--grpc-allowed-clients"},
	} {
		name := c.set
		if name == "" {
			name = "defaults"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel() // each is a separate helm process
			args := []string{}
			if c.set != "" {
				args = append(args, "--set", c.set)
			}
			objs := helmTemplate(t, "access", "chart-access", args...)
			d := into[appsv1.Deployment](t, objs.one(t, "Deployment", "access-homelab-autoscaler"))
			got := d.Spec.Template.Spec.Containers[0].Args
			for _, w := range c.want {
				if !slices.Contains(got, w) {
					t.Errorf("manager args %v lack %s", got, w)
				}
			}
			if flagValue(got, c.not) != "" || slices.Contains(got, c.not) {
				t.Errorf("manager args %v have %s", got, c.not)
			}
			fs := flag.NewFlagSet("homelab-autoscaler", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			o, _ := app.BindFlags(fs)
			if err := fs.Parse(got); err != nil {
				t.Fatal(err)
			} else if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestChartEverything installs the chart with every option on and two watched namespaces (one
// named twice).
func TestChartEverything(t *testing.T) {
	ensureNamespace(t, "chart-all", restricted)
	ensureNamespace(t, "chart-watched", nil)
	ensureNamespace(t, "chart-lab", nil)
	ensureNamespace(t, "chart-all-agent", privileged)
	objs := helmTemplate(t, "all", "chart-all", "-f", "charts/homelab-autoscaler/ci/all-values.yaml",
		"--set", "watchNamespaces={chart-watched,chart-lab,chart-watched},agent.namespace=chart-all-agent")
	const name = "all-homelab-autoscaler"

	if len(objs.find("ClusterRoleBinding", name+"-manager-namespaced")) != 0 {
		t.Fatal("watched namespaces must not bind the namespaced role cluster-wide")
	}
	apply(t, objs)
	d := into[appsv1.Deployment](t, objs.one(t, "Deployment", name))
	// With every binding in place, Secrets, Jobs and Groups stay reachable only in the watched
	// namespaces.
	checkManagerRights(t, d, []string{"chart-watched", "chart-lab"})

	checkManager(t, d, 2)
	args := d.Spec.Template.Spec.Containers[0].Args
	for _, want := range []string{"--namespace=chart-watched,chart-lab", "--machine-concurrency=8", "--zap-encoder=console"} {
		if !slices.Contains(args, want) {
			t.Errorf("manager args %v lack %s", args, want)
		}
	}
	checkWiring(t, objs, name, name+"-cluster-autoscaler")
	checkNoWebhook(t, objs)
	checkAccess(t, "chart-all", name+"-cluster-autoscaler", []access{
		{verb: "list", resource: "nodes", allowed: true},
		{verb: "create", resource: "configmaps", namespace: "chart-all", allowed: true},
		{verb: "get", resource: "secrets", namespace: "chart-all"},
	})
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		objs.one(t, kind, name)
	}
	objs.one(t, "ConfigMap", name+"-dashboard")
}

var restricted = map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}

// checkManager checks the manager Deployment's replicas, leader election, probes and that its pod
// passes the restricted Pod Security Standard, enforced by the apiserver on a dry-run Pod in a
// namespace that enforces it.
func checkManager(t *testing.T, d *appsv1.Deployment, replicas int32) {
	t.Helper()
	if d.Spec.Replicas == nil || *d.Spec.Replicas != replicas {
		t.Errorf("manager replicas %v, want %d", d.Spec.Replicas, replicas)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--leader-elect") {
		t.Errorf("several replicas without --leader-elect: %v", c.Args)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("the manager needs /healthz and /readyz probes")
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("the manager's root filesystem must be read-only")
	}
	// The manifests' arguments are parsed and validated by the manager's own flag set, so a
	// renamed or misspelt flag fails here and not in a crash-looping pod.
	fs := flag.NewFlagSet("homelab-autoscaler", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o, _ := app.BindFlags(fs)
	if err := fs.Parse(c.Args); err != nil {
		t.Errorf("the manager refuses its arguments %v: %v", c.Args, err)
	} else if err := o.Validate(); err != nil {
		t.Errorf("the manager refuses its arguments %v: %v", c.Args, err)
	}
	checkRestricted(t, d)
}

// checkRestricted has the apiserver's Pod Security admission judge a Deployment's pod, as a
// dry-run Pod in a namespace that enforces the restricted standard.
func checkRestricted(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	ensureNamespace(t, "restricted-check", restricted)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "restricted-check", GenerateName: d.Name + "-"},
		Spec:       *d.Spec.Template.Spec.DeepCopy(),
	}
	pod.Spec.ServiceAccountName = ""
	if err := env.Client.Create(context.Background(), pod, client.DryRunAll); err != nil {
		t.Errorf("the %s pod does not pass the restricted Pod Security Standard: %v", d.Name, err)
	}
}

// checkWiring follows cluster-autoscaler's cloud-config to the manager: the address is the gRPC
// Service that selects the manager, on its port; the client certificate files are mounted from
// a client Certificate's Secret; the server Certificate names the address's host and is what
// the manager mounts for its --grpc-tls-* flags; both come from one issuer.
func checkWiring(t *testing.T, objs manifests, manager, autoscaler string) {
	t.Helper()
	md := into[appsv1.Deployment](t, objs.one(t, "Deployment", manager))
	cad := into[appsv1.Deployment](t, objs.one(t, "Deployment", autoscaler))
	ca := cad.Spec.Template.Spec.Containers[0]
	checkRestricted(t, cad)
	if !slices.Contains(ca.Args, "--cloud-provider=externalgrpc") {
		t.Fatal("cluster-autoscaler is not told to use externalgrpc")
	}
	if !slices.Contains(ca.Args, "--namespace="+cad.Namespace) {
		t.Errorf("cluster-autoscaler's --namespace is not its own (%s): %v", cad.Namespace, ca.Args)
	}
	caMounts := secretMounts(cad)
	cloudConfigPath := flagValue(ca.Args, "--cloud-config")
	secret := into[corev1.Secret](t, objs.one(t, "Secret", caMounts[path.Dir(cloudConfigPath)]))
	cfg := struct{ Address, Cert, Key, CACert string }{}
	if err := yaml.Unmarshal([]byte(secret.StringData[path.Base(cloudConfigPath)]), &cfg); err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		t.Fatalf("cloud-config address %q: %v", cfg.Address, err)
	}
	svcName, svcNS, _ := strings.Cut(strings.TrimSuffix(host, ".svc"), ".")
	svc := into[corev1.Service](t, objs.one(t, "Service", svcName))
	if svc.Namespace != svcNS || svc.Spec.Ports[0].Port != int32(atoi(t, port)) {
		t.Fatalf("cloud-config address %s is not the Service %s/%s:%d", cfg.Address, svc.Namespace, svc.Name, svc.Spec.Ports[0].Port)
	}
	for k, v := range svc.Spec.Selector {
		if md.Spec.Template.Labels[k] != v {
			t.Fatalf("the gRPC Service selects %v, not the manager's pods (%v)", svc.Spec.Selector, md.Spec.Template.Labels)
		}
	}
	clientSecret := caMounts[path.Dir(cfg.Cert)]
	if clientSecret == "" || caMounts[path.Dir(cfg.Key)] != clientSecret || caMounts[path.Dir(cfg.CACert)] != clientSecret {
		t.Fatalf("cloud-config files %s, %s, %s are not in one mounted Secret (mounts %v)", cfg.Cert, cfg.Key, cfg.CACert, caMounts)
	}
	clientCert := certificateFor(t, objs, clientSecret)
	if !slices.Contains(stringSlice(clientCert, "spec", "usages"), "client auth") {
		t.Error("cluster-autoscaler's certificate is not for client auth")
	}

	mc := md.Spec.Template.Spec.Containers[0]
	allowed, err := cloudprovider.ParseAllowedClients(flagValue(mc.Args, "--grpc-allowed-clients"))
	if err != nil {
		t.Fatalf("the manager's --grpc-allowed-clients: %v", err)
	}
	cn, _, _ := unstructured.NestedString(clientCert.Object, "spec", "commonName")
	if !slices.Contains(allowed, cloudprovider.ClientIdentity{Kind: "cn", Value: cn}) {
		t.Errorf("cluster-autoscaler's certificate (common name %q) is not among the manager's --grpc-allowed-clients %s: its calls would be refused",
			cn, allowed.String())
	}
	mMounts := secretMounts(md)
	serverSecret := mMounts[path.Dir(flagValue(mc.Args, "--grpc-tls-cert"))]
	for _, f := range []string{"--grpc-tls-key", "--grpc-client-ca"} {
		if mMounts[path.Dir(flagValue(mc.Args, f))] != serverSecret {
			t.Fatalf("%s is not in the gRPC TLS Secret %s", f, serverSecret)
		}
	}
	server := certificateFor(t, objs, serverSecret)
	if !slices.Contains(stringSlice(server, "spec", "dnsNames"), host) {
		t.Errorf("the server certificate names %v, not the cloud-config host %s", stringSlice(server, "spec", "dnsNames"), host)
	}
	serverIssuer, _, _ := unstructured.NestedStringMap(server.Object, "spec", "issuerRef")
	clientIssuer, _, _ := unstructured.NestedStringMap(clientCert.Object, "spec", "issuerRef")
	if serverIssuer["name"] == "" || serverIssuer["name"] != clientIssuer["name"] {
		t.Errorf("server and client certificates come from different issuers (%v, %v): the manager's client CA would refuse cluster-autoscaler", serverIssuer, clientIssuer)
	}
}

// checkNoWebhook: nothing deployable registers an admission webhook or serves one. The API
// needs none, and installing must not depend on a serving certificate.
func checkNoWebhook(t *testing.T, objs manifests) {
	t.Helper()
	for _, u := range objs {
		if strings.HasSuffix(u.GetKind(), "WebhookConfiguration") {
			t.Errorf("%s %s is rendered; there is no admission webhook", u.GetKind(), u.GetName())
		}
		if u.GetKind() != "Deployment" && u.GetKind() != "Service" {
			continue
		}
		raw, err := json.Marshal(u.Object["spec"])
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.ToLower(string(raw)), "webhook") {
			t.Errorf("%s %s still mentions a webhook (an argument, port, volume or Secret)", u.GetKind(), u.GetName())
		}
	}
}

// secretMounts maps each mount path of the first container to the Secret mounted there.
func secretMounts(d *appsv1.Deployment) map[string]string {
	out := map[string]string{}
	for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				out[m.MountPath] = v.Secret.SecretName
			}
		}
	}
	return out
}

func certificateFor(t *testing.T, objs manifests, secret string) *unstructured.Unstructured {
	t.Helper()
	for _, c := range objs.find("Certificate", "") {
		if s, _, _ := unstructured.NestedString(c.Object, "spec", "secretName"); s == secret && secret != "" {
			return c
		}
	}
	t.Fatalf("no Certificate makes the Secret %q", secret)
	return nil
}

func flagValue(args []string, flag string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

func stringSlice(u *unstructured.Unstructured, fields ...string) []string {
	s, _, _ := unstructured.NestedStringSlice(u.Object, fields...)
	return s
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
