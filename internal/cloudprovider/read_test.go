package cloudprovider_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

func TestNodeGroupsReportsLimits(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "default-max")
	createGroup(t, ns, "capped", maxSize(2), minSize(1))
	createGroup(t, ns, "over", maxSize(50), minSize(9))
	createGroup(t, ns, "empty")
	createMachines(t, ns, "default-max", 3, nil)
	createMachines(t, ns, "capped", 4, func(i int, m *infrav1.Machine) { m.Name = "c" + machineName(i) })
	createMachines(t, ns, "over", 5, func(i int, m *infrav1.Machine) { m.Name = "o" + machineName(i) })

	want := map[string][2]int32{
		gid(ns, "default-max"): {0, 3}, // maxSize defaults to the member count
		gid(ns, "capped"):      {1, 2},
		gid(ns, "over"):        {5, 5}, // capped by the members; minSize never above max
		gid(ns, "empty"):       {0, 0},
	}
	waitFor(t, "every group's member count", func() bool {
		res, err := c.NodeGroups(ctx5s(t), &pb.NodeGroupsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][2]int32{}
		for _, g := range res.GetNodeGroups() {
			if g.GetDebug() == "" {
				t.Fatalf("group %s has no debug text", g.GetId())
			}
			got[g.GetId()] = [2]int32{g.GetMinSize(), g.GetMaxSize()}
		}
		for id, w := range want {
			if got[id] != w {
				return false
			}
		}
		return true
	})
}

func TestNodeGroupForNode(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "workers", maxSize(2))
	ms := createMachines(t, ns, "workers", 3, func(i int, m *infrav1.Machine) {
		if i == 1 {
			m.Spec.ProviderID = "homelab://" + ns + "/rack-1/blade-7"
		}
	})
	createGroup(t, ns, "others")
	other := createMachines(t, ns, "others", 1, func(_ int, m *infrav1.Machine) { m.Name = "other" })[0]
	orphan := createMachines(t, ns, "no-such-group", 1, func(_ int, m *infrav1.Machine) { m.Name = "orphan" })[0]
	registerCore(t, ms[0], true)
	registerCore(t, ms[1], true)
	registerCore(t, ms[2], true, func(n *corev1.Node) { n.Spec.ProviderID = "" })
	r.sync(t, ns)

	groups, err := c.NodeGroups(ctx5s(t), &pb.NodeGroupsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var listed *pb.NodeGroup
	for _, g := range groups.GetNodeGroups() {
		if g.GetId() == gid(ns, "workers") {
			listed = g
		}
	}
	cases := []struct {
		name string
		node *pb.ExternalGrpcNode
		want string
	}{
		{"registered node, default providerID", node(ms[0]), gid(ns, "workers")},
		{"registered node, custom providerID", node(ms[1]), gid(ns, "workers")},
		{"node without providerID yet, by name", &pb.ExternalGrpcNode{Name: ms[2].KubernetesNodeNameOrDefault()}, gid(ns, "workers")},
		{"fake unregistered node", fakeNode(ms[0], "unregistered"), gid(ns, "workers")},
		{"fake create-error node", fakeNode(ms[1], "create-error"), gid(ns, "workers")},
		{"fake node of another group", fakeNode(other, "unregistered"), gid(ns, "others")},
		{"fake node of no machine", &pb.ExternalGrpcNode{ProviderID: "homelab://x/y", Name: "homelab://x/y"}, ""},
		{"template node", &pb.ExternalGrpcNode{Name: "template-node-for-" + gid(ns, "workers") + "-123",
			Labels: map[string]string{"cluster-autoscaler.kubernetes.io/template-node": "true"}}, ""},
		{"control plane without providerID", &pb.ExternalGrpcNode{Name: "control-plane-1"}, ""},
		{"control plane of a cloud", &pb.ExternalGrpcNode{ProviderID: "kind://docker/kind/cp", Name: "cp"}, ""},
		{"same name as a machine, other providerID", &pb.ExternalGrpcNode{ProviderID: "aws:///i-123", Name: ms[2].KubernetesNodeNameOrDefault()}, ""},
		{"machine of a missing Group", node(orphan), ""},
		{"no node at all", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.NodeGroupForNode(ctx5s(t), &pb.NodeGroupForNodeRequest{Node: tc.node})
			if err != nil {
				t.Fatalf("never an error for a node: %v", err)
			}
			got := res.GetNodeGroup()
			if got.GetId() != tc.want {
				t.Fatalf("group %q, want %q", got.GetId(), tc.want)
			}
			if tc.want == gid(ns, "workers") && !proto.Equal(got, listed) {
				t.Fatalf("NodeGroupForNode %v differs from NodeGroups %v (cluster-autoscaler takes min/max from both)", got, listed)
			}
		})
	}
}

func TestNodeGroupTargetSize(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g")
	createMachines(t, ns, "g", 5, func(i int, m *infrav1.Machine) {
		if i < 2 {
			m.Spec.Online = true
		}
	})
	waitFor(t, "target 2", func() bool { return targetSize(t, c, gid(ns, "g")) == 2 })

	_, err := c.NodeGroupTargetSize(ctx5s(t), &pb.NodeGroupTargetSizeRequest{Id: gid(ns, "nope")})
	expectCode(t, err, codes.NotFound)
	for _, bad := range []string{"", "g", "/g", ns + "/", "Bad_NS/g"} {
		_, err = c.NodeGroupTargetSize(ctx5s(t), &pb.NodeGroupTargetSizeRequest{Id: bad})
		expectCode(t, err, codes.InvalidArgument)
	}
}

func TestNodeGroupNodesReportsStates(t *testing.T) {
	r := startReplica(t)
	c := r.client(t)
	ns := newNamespace(t)
	createGroup(t, ns, "g")
	type st struct {
		online   bool
		progress infrav1.Progress
		action   infrav1.PowerAction
	}
	states := []st{
		{true, infrav1.ProgressReady, infrav1.PowerActionOn},          // m0000 running
		{true, infrav1.ProgressStartingUp, infrav1.PowerActionOn},     // m0001 creating
		{true, infrav1.ProgressOff, ""},                               // m0002 creating (not started yet)
		{true, infrav1.ProgressFailed, infrav1.PowerActionOn},         // m0003 creating + error
		{false, infrav1.ProgressShuttingDown, infrav1.PowerActionOff}, // m0004 deleting
		{false, infrav1.ProgressReady, infrav1.PowerActionOn},         // m0005 deleting (not started yet)
		{false, infrav1.ProgressFailed, infrav1.PowerActionOff},       // m0006 deleting (power-off failed)
		{false, infrav1.ProgressOff, infrav1.PowerActionOff},          // m0007 not an instance
	}
	ms := createMachines(t, ns, "g", len(states), func(i int, m *infrav1.Machine) {
		m.Spec.Online = states[i].online
		m.Status.Progress = states[i].progress
		if states[i].action != "" {
			m.Status.Operation = &infrav1.PowerOperation{Action: states[i].action, Attempt: 3}
		}
		if i == 3 {
			m.Status.LastError = "power on failed after 3 attempts: BMC unreachable"
			m.Status.LastErrorReason = "Unreachable"
		}
	})
	want := map[string]pb.InstanceStatus_InstanceState{
		ms[0].ProviderIDOrDefault(): pb.InstanceStatus_instanceRunning,
		ms[1].ProviderIDOrDefault(): pb.InstanceStatus_instanceCreating,
		ms[2].ProviderIDOrDefault(): pb.InstanceStatus_instanceCreating,
		ms[3].ProviderIDOrDefault(): pb.InstanceStatus_instanceCreating,
		ms[4].ProviderIDOrDefault(): pb.InstanceStatus_instanceDeleting,
		ms[5].ProviderIDOrDefault(): pb.InstanceStatus_instanceDeleting,
		ms[6].ProviderIDOrDefault(): pb.InstanceStatus_instanceDeleting,
	}
	r.sync(t, ns)
	res, err := c.NodeGroupNodes(ctx5s(t), &pb.NodeGroupNodesRequest{Id: gid(ns, "g")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.GetInstances()) != len(want) {
		t.Fatalf("%d instances, want %d: %v", len(res.GetInstances()), len(want), res.GetInstances())
	}
	for _, in := range res.GetInstances() {
		if in.GetStatus().GetInstanceState() != want[in.GetId()] {
			t.Fatalf("instance %s: %s, want %s", in.GetId(), in.GetStatus().GetInstanceState(), want[in.GetId()])
		}
		info := in.GetStatus().GetErrorInfo()
		if in.GetId() == ms[3].ProviderIDOrDefault() {
			// m0007 is off and can still be powered on: the group is not out of machines.
			if info.GetErrorCode() != "Unreachable" || info.GetInstanceErrorClass() != 99 || info.GetErrorMessage() == "" {
				t.Fatalf("failed boot reported as %v, want code Unreachable class 99 with a message", info)
			}
		} else if info.GetErrorCode() != "" {
			t.Fatalf("instance %s has error info %v", in.GetId(), info)
		}
	}

	// With no machine left to power on instead (m0004 and m0005 are desired off but running,
	// so they could be), a failed boot is out-of-resources.
	for _, i := range []int{4, 5, 7} {
		setDesired(t, ms[i], true)
	}
	waitFor(t, "class out-of-resources", func() bool {
		res, err := c.NodeGroupNodes(ctx5s(t), &pb.NodeGroupNodesRequest{Id: gid(ns, "g")})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range res.GetInstances() {
			if in.GetId() == ms[3].ProviderIDOrDefault() {
				return in.GetStatus().GetErrorInfo().GetInstanceErrorClass() == 1
			}
		}
		return false
	})

	_, err = c.NodeGroupNodes(ctx5s(t), &pb.NodeGroupNodesRequest{Id: gid(ns, "missing")})
	expectCode(t, err, codes.NotFound)
	_, err = c.NodeGroupNodes(ctx5s(t), &pb.NodeGroupNodesRequest{Id: "not an id"})
	expectCode(t, err, codes.InvalidArgument)
}
