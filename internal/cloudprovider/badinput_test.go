package cloudprovider_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/doctable"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testpki"
)

// answer is a call's result as cluster-autoscaler logs it: the code and the message.
func answer(err error) string {
	s := status.Convert(err)
	return fmt.Sprintf("%s: %s", s.Code(), s.Message())
}

// The gRPC rows of docs/bad-input.md, sent to the real server. The fleet is the fuzz fleet:
// group g (minSize 1, maxSize 3) of four machines with m0000 on and registered.
func TestBadInputTableGRPC(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	fx := newFuzzFleet(t)
	g := gid(fx.ns, "g")
	call := func(f func(t *testing.T) error) func(t *testing.T) string {
		return func(t *testing.T) string { return answer(f(t)) }
	}
	garbage := &pb.ExternalGrpcNode{ProviderID: "aws:///eu-west-1a/i-0abc", Name: "ip-10-0-0-1"}
	doctable.Check(t, root, "grpc-", map[string]func(*testing.T) string{
		"grpc-unknown-group": call(func(t *testing.T) error {
			_, err := fx.c.NodeGroupTargetSize(ctx5s(t), &pb.NodeGroupTargetSizeRequest{Id: fx.ns + "/nope"})
			return err
		}),
		"grpc-malformed-id": call(func(t *testing.T) error {
			_, err := fx.c.NodeGroupTargetSize(ctx5s(t), &pb.NodeGroupTargetSizeRequest{Id: "workers"})
			return err
		}),
		"grpc-client-not-allowed": func(t *testing.T) string {
			ca := testpki.NewCA(t, "homelab CA")
			r := startReplica(t, func(o *app.Options) {
				o.GRPCInsecure, o.GRPCTLS = false, serverFiles(t, ca)
				o.GRPCAllowedClients = allowed(t, "cn:cluster-autoscaler")
			})
			c, k := ca.Issue(t, "intruder", false)
			client := dial(t, r.srv.Addr().String(), tlsCreds(testpki.ClientTLS(t, ca, c, k)))
			_, err := client.NodeGroups(ctx5s(t), &pb.NodeGroupsRequest{})
			return answer(err)
		},
		"grpc-increase-not-positive": call(func(t *testing.T) error { return increase(t, fx.c, g, 0) }),
		"grpc-increase-past-max":     call(func(t *testing.T) error { return increase(t, fx.c, g, 3) }),
		"grpc-increase-quiet-window": func(t *testing.T) string {
			r, _ := clocked(t, time.Date(2026, 6, 3, 23, 30, 0, 0, time.UTC))
			ns := newNamespace(t)
			createGroup(t, ns, "g", withWindows(infrav1.ScheduleWindow{Name: "quiet-hours", Start: "23:00", End: "07:00",
				TimeZone: "Europe/Berlin", MaxOnline: ptr[int32](0)}))
			createMachines(t, ns, "g", 2, nil)
			r.sync(t, ns)
			return answer(increase(t, r.client(t), gid(ns, "g"), 1))
		},
		"grpc-increase-power-on-cap": func(t *testing.T) string {
			now := time.Date(2026, 6, 3, 12, 0, 0, 0, time.UTC)
			r, _ := clocked(t, now)
			ns := newNamespace(t)
			createGroup(t, ns, "g", func(g *infrav1.Group) {
				g.Spec.PowerCycling = &infrav1.PowerCycling{MaxPowerOnsPerDay: ptr[int32](2)}
			})
			createMachines(t, ns, "g", 1, func(_ int, m *infrav1.Machine) {
				m.Status.PowerOns = []metav1.Time{metav1.NewTime(now.Add(-3 * time.Hour)), metav1.NewTime(now.Add(-time.Hour))}
			})
			r.sync(t, ns)
			return answer(increase(t, r.client(t), gid(ns, "g"), 1))
		},
		"grpc-decrease-not-negative": call(func(t *testing.T) error { return decrease(t, fx.c, g, 1) }),
		"grpc-decrease-registered":   call(func(t *testing.T) error { return decrease(t, fx.c, g, -1) }),
		"grpc-delete-no-nodes":       call(func(t *testing.T) error { return deleteNodes(t, fx.c, g) }),
		"grpc-delete-foreign-node":   call(func(t *testing.T) error { return deleteNodes(t, fx.c, g, garbage) }),
		"grpc-delete-other-group": call(func(t *testing.T) error {
			return deleteNodes(t, fx.c, g, node(fx.machines[len(fx.machines)-1]))
		}),
		"grpc-delete-below-min": call(func(t *testing.T) error { return deleteNodes(t, fx.c, g, node(fx.machines[0])) }),
		"grpc-node-not-ours": func(t *testing.T) string {
			res, err := fx.c.NodeGroupForNode(ctx5s(t), &pb.NodeGroupForNodeRequest{Node: garbage})
			if err != nil {
				return answer(err)
			}
			return fmt.Sprintf("OK: node group id %q", res.GetNodeGroup().GetId())
		},
	})
}
