package cloudprovider_test

import (
	"context"
	"maps"
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
)

// fuzzFleet is the one fleet a fuzz process sends its requests to: group g of four machines
// (maxSize 3, minSize 1; m0000 on and registered, the others off) and a group of one machine in
// a second namespace, behind one replica.
type fuzzFleet struct {
	r        *replica
	c        pb.CloudProviderClient
	ns, nsB  string
	machines []*infrav1.Machine // m0000..m0003 of g, then the other group's machine
}

func newFuzzFleet(t testing.TB) *fuzzFleet {
	t.Helper()
	fx := &fuzzFleet{r: startReplica(t), ns: newNamespace(t), nsB: newNamespace(t)}
	fx.c = fx.r.client(t)
	createGroup(t, fx.ns, "g", minSize(1), maxSize(3))
	createGroup(t, fx.nsB, "g")
	fx.machines = createMachines(t, fx.ns, "g", 4, func(i int, m *infrav1.Machine) {
		if i == 0 {
			m.Spec.Online = true
			m.Status.Progress, m.Status.PowerState = infrav1.ProgressReady, infrav1.PoweredOn
		}
	})
	registerCore(t, fx.machines[0], true)
	fx.machines = append(fx.machines, createMachines(t, fx.nsB, "g", 1, nil)...)
	fx.r.sync(t, fx.ns)
	fx.r.sync(t, fx.nsB)
	return fx
}

// versions are the resourceVersions of every Group and machine of the fleet, from the
// apiserver: a refused write must leave all of them as they were.
func (fx *fuzzFleet) versions(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ns := range []string{fx.ns, fx.nsB} {
		groups, machines := &infrav1.GroupList{}, &infrav1.MachineList{}
		for _, l := range []client.ObjectList{groups, machines} {
			if err := env.Client.List(context.Background(), l, client.InNamespace(ns)); err != nil {
				t.Fatal(err)
			}
		}
		for _, g := range groups.Items {
			out[ns+"/group/"+g.Name] = g.ResourceVersion
		}
		for _, m := range machines.Items {
			out[ns+"/machine/"+m.Name] = m.ResourceVersion
		}
	}
	return out
}

// reset puts every machine's spec.online back as created, after a granted
// write, so that each input starts from the same fleet. An unchanged machine is not written.
func (fx *fuzzFleet) reset(t *testing.T) {
	t.Helper()
	for _, want := range fx.machines {
		key := &infrav1.Machine{}
		key.Namespace, key.Name = want.Namespace, want.Name
		if _, err := optimistic.Update(context.Background(), testWriter, key, func(n *infrav1.Machine) error {
			n.Spec.Online = want.Spec.Online
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	fx.r.sync(t, fx.ns)
	fx.r.sync(t, fx.nsB)
}

// groupID picks the id a request names: the fleet's group, the other namespace's group, or the
// fuzzer's own bytes, bare or behind the fleet's namespace.
func (fx *fuzzFleet) groupID(sel uint8, raw string) string {
	switch sel % 4 {
	case 0:
		return gid(fx.ns, "g")
	case 1:
		return gid(fx.nsB, "g")
	case 2:
		return raw
	}
	return fx.ns + "/" + raw
}

// node picks the node a request names: a member as a registered node or as
// cluster-autoscaler's fake node, the other group's machine, or the fuzzer's own fields.
func (fx *fuzzFleet) node(sel uint8, providerID, name, labelKey, labelValue string) *pb.ExternalGrpcNode {
	switch sel % 5 {
	case 0:
		return node(fx.machines[0])
	case 1:
		return node(fx.machines[1])
	case 2:
		return fakeNode(fx.machines[2], "fuzz")
	case 3:
		return node(fx.machines[len(fx.machines)-1])
	}
	return &pb.ExternalGrpcNode{ProviderID: providerID, Name: name, Labels: map[string]string{labelKey: labelValue}}
}

// rpcCodes are the codes a request may get back; anything else (Unknown, Internal for a
// recovered panic, Aborted without a concurrent writer) is a bug.
var rpcCodes = map[codes.Code]bool{
	codes.OK: true, codes.InvalidArgument: true, codes.NotFound: true, codes.FailedPrecondition: true,
	codes.ResourceExhausted: true, codes.Unimplemented: true,
}

// FuzzRPC sends arbitrary requests to every node-group call of the real server over loopback
// gRPC: unknown and malformed group ids, int32 extremes as deltas, garbage nodes. The answer
// must carry a documented code, a refused write must change nothing, and a read must not write.
func FuzzRPC(f *testing.F) {
	fx := newFuzzFleet(f)
	for _, s := range []struct {
		op, group uint8
		id        string
		delta     int32
		node      uint8
		pid, name string
	}{
		{0, 0, "", 1, 0, "", ""},
		{1, 0, "", 1, 0, "", ""},
		{1, 0, "", 2, 0, "", ""},
		{1, 0, "", math.MaxInt32, 0, "", ""},
		{1, 0, "", math.MinInt32, 0, "", ""},
		{1, 0, "", 0, 0, "", ""},
		{1, 2, "nope/g", 1, 0, "", ""},
		{1, 2, "", 1, 0, "", ""},
		{1, 2, "/", 1, 0, "", ""},
		{1, 3, "UPPER", 1, 0, "", ""},
		{2, 0, "", -1, 0, "", ""},
		{2, 0, "", math.MinInt32, 0, "", ""},
		{2, 0, "", 1, 0, "", ""},
		{2, 0, "", math.MaxInt32, 0, "", ""},
		{3, 0, "", 0, 0, "", ""},
		{3, 0, "", 0, 1, "", ""},
		{3, 0, "", 0, 2, "", ""},
		{3, 0, "", 0, 3, "", ""},
		{3, 0, "", 0, 4, "homelab://x/y", "y"},
		{3, 0, "", 0, 4, "", ""},
		{3, 1, "", 0, 0, "", ""},
		{4, 0, "", 0, 4, "", "\x00"},
		{4, 0, "", 0, 4, "aws:///us-east-1a/i-0", ""},
		{4, 0, "", 0, 2, "", ""},
		{5, 2, "a/b/c", 0, 0, "", ""},
		{6, 0, "", 0, 0, "", ""},
		{7, 1, "", 0, 0, "", ""},
		{8, 3, "", 0, 4, "", "template-node-for-g-123"},
	} {
		f.Add(s.op, s.group, s.id, s.delta, s.node, s.pid, s.name, "homelab-autoscaler.dev/group", "g")
	}
	f.Fuzz(func(t *testing.T, op, group uint8, rawID string, delta int32, nodeSel uint8, providerID, name, labelKey, labelValue string) {
		// cluster-autoscaler's client cannot send a string that is not UTF-8: protobuf refuses
		// to marshal it, before the server sees anything.
		rawID, providerID, name = strings.ToValidUTF8(rawID, "?"), strings.ToValidUTF8(providerID, "?"), strings.ToValidUTF8(name, "?")
		labelKey, labelValue = strings.ToValidUTF8(labelKey, "?"), strings.ToValidUTF8(labelValue, "?")
		id := fx.groupID(group, rawID)
		n := fx.node(nodeSel, providerID, name, labelKey, labelValue)
		known := id == gid(fx.ns, "g") || id == gid(fx.nsB, "g")
		before := fx.versions(t)
		ctx := ctx5s(t)

		var err error
		write := false
		switch op % 9 {
		case 0:
			_, err = fx.c.NodeGroupTargetSize(ctx, &pb.NodeGroupTargetSizeRequest{Id: id})
		case 1:
			write = true
			_, err = fx.c.NodeGroupIncreaseSize(ctx, &pb.NodeGroupIncreaseSizeRequest{Id: id, Delta: delta})
			if delta <= 0 {
				expectCode(t, err, codes.InvalidArgument)
			}
		case 2:
			write = true
			_, err = fx.c.NodeGroupDecreaseTargetSize(ctx, &pb.NodeGroupDecreaseTargetSizeRequest{Id: id, Delta: delta})
			if delta >= 0 {
				expectCode(t, err, codes.InvalidArgument)
			}
		case 3:
			write = true
			var nodes []*pb.ExternalGrpcNode
			if nodeSel%7 != 6 {
				nodes = append(nodes, n)
			}
			_, err = fx.c.NodeGroupDeleteNodes(ctx, &pb.NodeGroupDeleteNodesRequest{Id: id, Nodes: nodes})
			if len(nodes) == 0 {
				expectCode(t, err, codes.InvalidArgument)
			}
		case 4:
			var res *pb.NodeGroupForNodeResponse
			res, err = fx.c.NodeGroupForNode(ctx, &pb.NodeGroupForNodeRequest{Node: n})
			// An error here would abort cluster-autoscaler's scale-up: never one.
			expectCode(t, err, codes.OK)
			if got := res.GetNodeGroup().GetId(); got != "" && got != gid(fx.ns, "g") && got != gid(fx.nsB, "g") {
				t.Fatalf("NodeGroupForNode(%v) = %q, not a group of the fleet", n, got)
			}
		case 5:
			_, err = fx.c.NodeGroupNodes(ctx, &pb.NodeGroupNodesRequest{Id: id})
		case 6:
			_, err = fx.c.NodeGroupTemplateNodeInfo(ctx, &pb.NodeGroupTemplateNodeInfoRequest{Id: id})
		case 7:
			_, err = fx.c.NodeGroupGetOptions(ctx, &pb.NodeGroupAutoscalingOptionsRequest{Id: id})
		case 8:
			_, err = fx.c.PricingNodePrice(ctx, &pb.PricingNodePriceRequest{Node: n})
		}

		code := status.Code(err)
		if !rpcCodes[code] {
			t.Fatalf("op %d on %q: code %s is not a documented answer: %v", op%9, id, code, err)
		}
		if !known && op%9 != 4 && op%9 != 8 && code != codes.NotFound && code != codes.InvalidArgument {
			t.Fatalf("op %d on the unknown group %q: %v, want NotFound or InvalidArgument", op%9, id, err)
		}
		if write && code == codes.OK {
			fx.reset(t)
			return
		}
		if after := fx.versions(t); !maps.Equal(before, after) {
			t.Fatalf("op %d on %q answered %s but changed objects:\nbefore %v\nafter  %v", op%9, id, code, before, after)
		}
	})
}
