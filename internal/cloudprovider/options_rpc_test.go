package cloudprovider_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

func TestNodeGroupGetOptions(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "plain")
	createGroup(t, ns, "tuned", func(g *infrav1.Group) {
		g.Spec.AutoscalingOptions = &infrav1.AutoscalingOptions{
			ScaleDownUtilizationThreshold: ptr("0.7"),
			MaxNodeProvisionTime:          &metav1.Duration{Duration: 4 * time.Minute},
			ZeroOrMaxNodeScaling:          ptr(true),
		}
	})
	r.sync(t, ns)
	defaults := &pb.NodeGroupAutoscalingOptions{
		ScaleDownUtilizationThreshold: 0.5, ScaleDownGpuUtilizationThreshold: 0.6, IgnoreDaemonSetsUtilization: true,
		ScaleDownUnneededDuration: durationpb.New(3 * time.Minute), ScaleDownUnreadyDuration: durationpb.New(7 * time.Minute),
		MaxNodeProvisionDuration: durationpb.New(15 * time.Minute),
	}

	_, err := c.NodeGroupGetOptions(ctx5s(t), &pb.NodeGroupAutoscalingOptionsRequest{Id: gid(ns, "plain"), Defaults: defaults})
	expectCode(t, err, codes.Unimplemented)
	_, err = c.NodeGroupGetOptions(ctx5s(t), &pb.NodeGroupAutoscalingOptionsRequest{Id: gid(ns, "missing"), Defaults: defaults})
	expectCode(t, err, codes.NotFound)

	res, err := c.NodeGroupGetOptions(ctx5s(t), &pb.NodeGroupAutoscalingOptionsRequest{Id: gid(ns, "tuned"), Defaults: defaults})
	if err != nil {
		t.Fatal(err)
	}
	o := res.GetNodeGroupAutoscalingOptions()
	if o.GetScaleDownUtilizationThreshold() != 0.7 || !o.GetZeroOrMaxNodeScaling() || o.GetMaxNodeProvisionDuration().AsDuration() != 4*time.Minute {
		t.Fatalf("the group's options are not applied: %v", o)
	}
	if o.GetScaleDownGpuUtilizationThreshold() != 0.6 || !o.GetIgnoreDaemonSetsUtilization() ||
		o.GetScaleDownUnneededDuration().AsDuration() != 3*time.Minute || o.GetScaleDownUnreadyDuration().AsDuration() != 7*time.Minute {
		t.Fatalf("the defaults are not echoed: %v", o)
	}

	// Without defaults in the request, cluster-autoscaler's own fill every duration: none is 0.
	res, err = c.NodeGroupGetOptions(ctx5s(t), &pb.NodeGroupAutoscalingOptionsRequest{Id: gid(ns, "tuned")})
	if err != nil {
		t.Fatal(err)
	}
	o = res.GetNodeGroupAutoscalingOptions()
	if o.GetScaleDownUnneededDuration().AsDuration() != 10*time.Minute || o.GetScaleDownUnreadyDuration().AsDuration() != 20*time.Minute ||
		o.GetMaxNodeProvisionDuration().AsDuration() != 4*time.Minute || o.GetScaleDownGpuUtilizationThreshold() != 0.5 {
		t.Fatalf("cluster-autoscaler's defaults not filled in: %v", o)
	}
}

func TestPricing(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "priced-pool")
	ms := createMachines(t, ns, "priced-pool", 3, func(i int, m *infrav1.Machine) {
		switch i {
		case 0:
			m.Spec.Pricing = &infrav1.Pricing{HourlyRate: resource.MustParse("0.30")}
			m.Spec.Online = true
		case 1:
			m.Spec.Pricing = &infrav1.Pricing{HourlyRate: resource.MustParse("0.12")}
		}
	})
	r.sync(t, ns)
	start := time.Now()
	period := func(n *pb.ExternalGrpcNode, d time.Duration) *pb.PricingNodePriceRequest {
		return &pb.PricingNodePriceRequest{Node: n, StartTimestamp: timestamppb.New(start), EndTimestamp: timestamppb.New(start.Add(d))}
	}
	var res *pb.PricingNodePriceResponse
	waitFor(t, "the priced machine in the cache", func() bool {
		var err error
		res, err = c.PricingNodePrice(ctx5s(t), period(node(ms[0]), 2*time.Hour))
		return err == nil
	})
	if diff := res.GetPrice() - 0.60; diff > 1e-9 || diff < -1e-9 {
		t.Fatalf("price %v, want 0.60 (0.30 an hour for 2 hours)", res.GetPrice())
	}
	// A template node is priced as the machine a scale-up would power on next (the cheapest).
	res, err := c.PricingNodePrice(ctx5s(t), period(&pb.ExternalGrpcNode{Name: "template-node-for-" + gid(ns, "priced-pool") + "-4242-upcoming-0"}, time.Hour))
	if err != nil || res.GetPrice() != 0.12 {
		t.Fatalf("template price %v (%v), want 0.12", res.GetPrice(), err)
	}
	_, err = c.PricingNodePrice(ctx5s(t), period(node(ms[2]), time.Hour))
	expectCode(t, err, codes.Unimplemented)
	_, err = c.PricingNodePrice(ctx5s(t), period(&pb.ExternalGrpcNode{Name: "control-plane"}, time.Hour))
	expectCode(t, err, codes.Unimplemented)
	_, err = c.PricingNodePrice(ctx5s(t), period(node(ms[0]), -time.Hour))
	expectCode(t, err, codes.InvalidArgument)
	_, err = c.PricingNodePrice(ctx5s(t), &pb.PricingNodePriceRequest{Node: node(ms[0])})
	expectCode(t, err, codes.InvalidArgument)
	_, err = c.PricingPodPrice(ctx5s(t), &pb.PricingPodPriceRequest{StartTimestamp: timestamppb.New(start), EndTimestamp: timestamppb.New(start)})
	expectCode(t, err, codes.Unimplemented)
}

// A Group's machineDefaults.pricing prices the members without their own, both in the price
// answers and in the choice of the machine to power on next.
func TestPricingFromGroupDefaults(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "defaulted", func(g *infrav1.Group) {
		g.Spec.MachineDefaults = &infrav1.MachineDefaults{Pricing: &infrav1.Pricing{HourlyRate: resource.MustParse("0.05")}}
	})
	ms := createMachines(t, ns, "defaulted", 2, func(i int, m *infrav1.Machine) {
		if i == 0 {
			m.Spec.Pricing = &infrav1.Pricing{HourlyRate: resource.MustParse("0.20")}
		}
	})
	r.sync(t, ns)
	start := time.Now()
	period := &pb.PricingNodePriceRequest{Node: node(ms[1]), StartTimestamp: timestamppb.New(start), EndTimestamp: timestamppb.New(start.Add(time.Hour))}
	var res *pb.PricingNodePriceResponse
	waitFor(t, "the machine in the cache", func() bool {
		var err error
		res, err = c.PricingNodePrice(ctx5s(t), period)
		return err == nil
	})
	if res.GetPrice() != 0.05 {
		t.Fatalf("price of a machine without its own pricing %v, want the Group's 0.05", res.GetPrice())
	}
	// The defaulted machine is cheaper than the one priced at 0.20, so a scale-up takes it.
	period.Node = &pb.ExternalGrpcNode{Name: "template-node-for-" + gid(ns, "defaulted") + "-1-upcoming-0"}
	if res, err := c.PricingNodePrice(ctx5s(t), period); err != nil || res.GetPrice() != 0.05 {
		t.Fatalf("template price %v (%v), want 0.05", res.GetPrice(), err)
	}
}

func TestGPUAndLifecycleCalls(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	label, err := c.GPULabel(ctx5s(t), &pb.GPULabelRequest{})
	if err != nil || label.GetLabel() != "" {
		t.Fatalf("GPULabel %q, %v", label.GetLabel(), err)
	}
	types, err := c.GetAvailableGPUTypes(ctx5s(t), &pb.GetAvailableGPUTypesRequest{})
	if err != nil || len(types.GetGpuTypes()) != 0 {
		t.Fatalf("GetAvailableGPUTypes %v, %v", types, err)
	}
	// Refresh is cheap: cluster-autoscaler calls it every loop, and an error aborts the loop.
	begin := time.Now()
	for range 100 {
		if _, err := c.Refresh(ctx5s(t), &pb.RefreshRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if per := time.Since(begin) / 100; per > 20*time.Millisecond {
		t.Fatalf("Refresh takes %s", per)
	}
	if _, err := c.Cleanup(ctx5s(t), &pb.CleanupRequest{}); err != nil {
		t.Fatal(err)
	}
}
