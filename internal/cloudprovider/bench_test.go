package cloudprovider_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

// benchSizes are the fleet sizes every benchmark runs at.
var benchSizes = []int{100, 1000, 5000}

// benchCallers is how many goroutines call at once, over one connection.
const benchCallers = 4

// benchFleet is a group of machines made once per size for the whole benchmark run: half of
// them on and Ready (one with a registered Node), half off, some of those having booted
// before and some priced.
type benchFleet struct {
	ns       string
	id       string
	machines []*infrav1.Machine
}

var (
	fleetsMu sync.Mutex
	fleets   = map[int]*benchFleet{}
)

func fleetOf(b *testing.B, size int) *benchFleet {
	b.Helper()
	fleetsMu.Lock()
	defer fleetsMu.Unlock()
	if f, ok := fleets[size]; ok {
		return f
	}
	begin := time.Now()
	ns := newNamespace(b)
	createGroup(b, ns, "bench", func(g *infrav1.Group) {
		g.Spec.AutoscalingOptions = &infrav1.AutoscalingOptions{MaxNodeProvisionTime: &metav1.Duration{Duration: 5 * time.Minute}}
	})
	past := metav1.NewTime(time.Now().Add(-24 * time.Hour))
	ms := createMachines(b, ns, "bench", size, func(i int, m *infrav1.Machine) {
		m.Spec.Pricing = &infrav1.Pricing{HourlyRate: resource.MustParse(fmt.Sprintf("0.%02d", 1+i%50))}
		if i%2 == 0 {
			m.Spec.Online = true
			m.Status.Progress = infrav1.ProgressReady
			m.Status.PowerState = infrav1.PoweredOn
			m.Status.ProviderID = m.ProviderIDOrDefault()
			return
		}
		if i%4 == 1 {
			m.Status.ProviderID = m.ProviderIDOrDefault()
			m.Status.LastShutdownTime = &past
		}
	})
	registerCore(b, ms[0], true)
	f := &benchFleet{ns: ns, id: gid(ns, "bench"), machines: ms}
	fleets[size] = f
	b.Logf("made a fleet of %d machines in %s", size, time.Since(begin).Round(time.Millisecond))
	return f
}

// step is one call of a benchmark operation; i numbers the operation from 1.
type step func(ctx context.Context, i int) error

// measure runs b.N operations from benchCallers goroutines and reports the latency percentiles
// of the measured call alone; before and after (either may be nil) run untimed around it, in the
// same goroutine.
func measure(b *testing.B, before, call, after step) {
	b.Helper()
	var next atomic.Int64
	lat := make([][]time.Duration, benchCallers)
	errs := make(chan error, benchCallers)
	b.ResetTimer()
	var wg sync.WaitGroup
	for w := range benchCallers {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > b.N {
					return
				}
				if err := operation(i, before, call, after, &lat[w]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(float64(len(all))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func operation(i int, before, call, after step, lat *[]time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if before != nil {
		if err := before(ctx, i); err != nil {
			return err
		}
	}
	start := time.Now()
	err := call(ctx, i)
	*lat = append(*lat, time.Since(start))
	if err != nil || after == nil {
		return err
	}
	return after(ctx, i)
}

func BenchmarkReadRPCs(b *testing.B) {
	r := startReplica(b)
	c := r.client(b)
	for _, size := range benchSizes {
		f := fleetOf(b, size)
		r.sync(b, f.ns)
		now := timestamppb.Now()
		hour := timestamppb.New(now.AsTime().Add(time.Hour))
		calls := []struct {
			name string
			call func(ctx context.Context, i int) error
		}{
			{"NodeGroups", func(ctx context.Context, _ int) error {
				_, err := c.NodeGroups(ctx, &pb.NodeGroupsRequest{})
				return err
			}},
			{"NodeGroupForNode", func(ctx context.Context, i int) error {
				m := f.machines[rand.IntN(len(f.machines))] //nolint:gosec // load spreading only
				_, err := c.NodeGroupForNode(ctx, &pb.NodeGroupForNodeRequest{Node: node(m)})
				return err
			}},
			{"NodeGroupForNode-unmanaged", func(ctx context.Context, i int) error {
				_, err := c.NodeGroupForNode(ctx, &pb.NodeGroupForNodeRequest{Node: &pb.ExternalGrpcNode{Name: fmt.Sprintf("control-plane-%d", i%3)}})
				return err
			}},
			{"NodeGroupTargetSize", func(ctx context.Context, _ int) error {
				_, err := c.NodeGroupTargetSize(ctx, &pb.NodeGroupTargetSizeRequest{Id: f.id})
				return err
			}},
			{"NodeGroupNodes", func(ctx context.Context, _ int) error {
				_, err := c.NodeGroupNodes(ctx, &pb.NodeGroupNodesRequest{Id: f.id})
				return err
			}},
			{"NodeGroupTemplateNodeInfo", func(ctx context.Context, _ int) error {
				_, err := c.NodeGroupTemplateNodeInfo(ctx, &pb.NodeGroupTemplateNodeInfoRequest{Id: f.id})
				return err
			}},
			{"NodeGroupGetOptions", func(ctx context.Context, _ int) error {
				_, err := c.NodeGroupGetOptions(ctx, &pb.NodeGroupAutoscalingOptionsRequest{Id: f.id})
				return err
			}},
			{"PricingNodePrice", func(ctx context.Context, i int) error {
				m := f.machines[rand.IntN(len(f.machines))] //nolint:gosec // load spreading only
				_, err := c.PricingNodePrice(ctx, &pb.PricingNodePriceRequest{Node: node(m), StartTimestamp: now, EndTimestamp: hour})
				return err
			}},
			{"PricingNodePrice-template", func(ctx context.Context, i int) error {
				_, err := c.PricingNodePrice(ctx, &pb.PricingNodePriceRequest{
					Node: &pb.ExternalGrpcNode{Name: "template-node-for-" + f.id + "-1"}, StartTimestamp: now, EndTimestamp: hour})
				return err
			}},
			{"GPULabel", func(ctx context.Context, _ int) error {
				_, err := c.GPULabel(ctx, &pb.GPULabelRequest{})
				return err
			}},
			{"GetAvailableGPUTypes", func(ctx context.Context, _ int) error {
				_, err := c.GetAvailableGPUTypes(ctx, &pb.GetAvailableGPUTypesRequest{})
				return err
			}},
			{"Refresh", func(ctx context.Context, _ int) error {
				_, err := c.Refresh(ctx, &pb.RefreshRequest{})
				return err
			}},
		}
		for _, bc := range calls {
			b.Run(fmt.Sprintf("%s/machines=%d", bc.name, size), func(b *testing.B) { measure(b, nil, bc.call, nil) })
		}
	}
}

// BenchmarkWriteRPCs measures each write call under concurrency. Every operation is undone
// (untimed) by the opposite call, so the fleet stays the same however long the benchmark runs.
func BenchmarkWriteRPCs(b *testing.B) {
	r := startReplica(b)
	c := r.client(b)
	for _, size := range benchSizes {
		f := fleetOf(b, size)
		r.sync(b, f.ns)
		increase := func(ctx context.Context, _ int) error {
			_, err := c.NodeGroupIncreaseSize(ctx, &pb.NodeGroupIncreaseSizeRequest{Id: f.id, Delta: 1})
			return err
		}
		// Cancels a machine that has not registered: one that increase powered on.
		decrease := func(ctx context.Context, _ int) error {
			_, err := c.NodeGroupDecreaseTargetSize(ctx, &pb.NodeGroupDecreaseTargetSizeRequest{Id: f.id, Delta: -1})
			return err
		}
		b.Run(fmt.Sprintf("IncreaseSize/machines=%d", size), func(b *testing.B) {
			before := conflicts(b, r)
			measure(b, nil, increase, decrease)
			b.ReportMetric((conflicts(b, r)-before)/float64(b.N), "conflicts/op")
		})
		b.Run(fmt.Sprintf("DecreaseTargetSize/machines=%d", size), func(b *testing.B) {
			before := conflicts(b, r)
			measure(b, increase, decrease, nil)
			b.ReportMetric((conflicts(b, r)-before)/float64(b.N), "conflicts/op")
		})

		// Each operation deletes a running machine (one of the even-numbered half) and a human
		// turns it back on afterwards.
		running := func(i int) *infrav1.Machine { return f.machines[2*((i-1)%(len(f.machines)/2))] }
		del := func(ctx context.Context, i int) error {
			_, err := c.NodeGroupDeleteNodes(ctx, &pb.NodeGroupDeleteNodesRequest{Id: f.id, Nodes: []*pb.ExternalGrpcNode{node(running(i))}})
			return err
		}
		restore := func(_ context.Context, i int) error {
			setDesired(b, running(i), true)
			return nil
		}
		b.Run(fmt.Sprintf("DeleteNodes/machines=%d", size), func(b *testing.B) {
			measure(b, nil, del, restore)
			r.sync(b, f.ns)
		})
	}
}

// conflicts sums the 409 answers the replica's writes met.
func conflicts(b *testing.B, r *replica) float64 {
	b.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.writes.Conflicts)
	families, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
