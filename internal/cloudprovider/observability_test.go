package cloudprovider_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

func TestMetricsPerMethodAndCode(t *testing.T) {
	for _, c := range cloudprovider.DefaultMetrics.Collectors() {
		var are prometheus.AlreadyRegisteredError
		if err := ctrlmetrics.Registry.Register(c); !errors.As(err, &are) {
			t.Fatalf("default metrics not registered with controller-runtime's registry: %v", err)
		}
	}
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g")
	createMachines(t, ns, "g", 2, nil)
	r.sync(t, ns)
	for range 3 {
		targetSize(t, c, gid(ns, "g"))
	}
	_, err := c.NodeGroupTargetSize(ctx5s(t), &pb.NodeGroupTargetSizeRequest{Id: gid(ns, "missing")})
	expectCode(t, err, codes.NotFound)
	if err := increase(t, c, gid(ns, "g"), 2); err != nil {
		t.Fatal(err)
	}

	m := r.metrics
	if got := testutil.ToFloat64(m.Requests.WithLabelValues("NodeGroupTargetSize", "OK")); got != 3 {
		t.Fatalf("NodeGroupTargetSize OK counted %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.Requests.WithLabelValues("NodeGroupTargetSize", "NotFound")); got != 1 {
		t.Fatalf("NodeGroupTargetSize NotFound counted %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.MachinesChanged.WithLabelValues("NodeGroupIncreaseSize")); got != 2 {
		t.Fatalf("machines changed %v, want 2", got)
	}
	if got := testutil.CollectAndCount(m.Duration, "homelab_autoscaler_grpc_request_duration_seconds"); got != 3 {
		t.Fatalf("%d latency series, want 3 (TargetSize OK and NotFound, IncreaseSize OK)", got)
	}
	if got := testutil.ToFloat64(m.InFlight.WithLabelValues("NodeGroupTargetSize")); got != 0 {
		t.Fatalf("%v calls still in flight", got)
	}
}

func TestWriteCallsAreLogged(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	logger := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, args)
	}, funcr.Options{})
	r := startReplica(t, func(o *app.Options) { o.Logger = logger })
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g", maxSize(1))
	createMachines(t, ns, "g", 2, nil)
	r.sync(t, ns)
	if err := increase(t, c, gid(ns, "g"), 1); err != nil {
		t.Fatal(err)
	}
	expectCode(t, increase(t, c, gid(ns, "g"), 1), codes.ResourceExhausted)

	mu.Lock()
	defer mu.Unlock()
	var granted, refused bool
	for _, l := range lines {
		if !strings.Contains(l, `"method"="NodeGroupIncreaseSize"`) || !strings.Contains(l, `"group"="`+gid(ns, "g")+`"`) ||
			!strings.Contains(l, `"asked"=1`) {
			continue
		}
		granted = granted || strings.Contains(l, `"machines"=["m0000"]`)
		refused = refused || strings.Contains(l, `"code"="ResourceExhausted"`)
	}
	if !granted || !refused {
		t.Fatalf("write calls not logged with group, delta, machines and code:\n%s", strings.Join(lines, "\n"))
	}
}
