package machines_test

import (
	"context"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/doctable"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// The Node-claim rows of docs/bad-input.md: what a machine that answers to a Node it may not
// adopt reports (its Stalled condition shows the reason and the message), through the lookup
// every controller uses, against a real apiserver's cache.
func TestBadInputTableNodes(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	c := indexedCache(t)
	claim := func(setup func(t *testing.T, p string) *infrav1.Machine) func(t *testing.T) string {
		return func(t *testing.T) string {
			p := unique(t)
			m := setup(t, p)
			var got machines.NodeMatch
			testenv.Eventually(t, 10*time.Second, "the cache to show the refusal", func() bool {
				var err error
				got, err = machines.NodeFor(context.Background(), c, m)
				if err != nil {
					t.Fatal(err)
				}
				return got.Reason != ""
			})
			if got.Node != nil {
				t.Fatalf("the machine took Node %s", got.Node.Name)
			}
			return got.Reason + ": " + got.Conflict
		}
	}
	optIn := func(ns string) map[string]string { return map[string]string{infrav1.LabelNamespace: ns} }
	doctable.Check(t, root, "node-", map[string]func(*testing.T) string{
		"node-control-plane": claim(func(t *testing.T, p string) *infrav1.Machine {
			labels := optIn(p)
			labels["node-role.kubernetes.io/control-plane"] = ""
			createNode(t, p+"-cp", "", labels)
			return createMachine(t, p, "w1", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-cp" })
		}),
		"node-not-opted-in": claim(func(t *testing.T, p string) *infrav1.Machine {
			createNode(t, p+"-w1", "", nil)
			return createMachine(t, p, "w1", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-w1" })
		}),
		"node-other-namespace": claim(func(t *testing.T, p string) *infrav1.Machine {
			createNode(t, p+"-w1", "", optIn("tenant-b"))
			return createMachine(t, p, "w1", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-w1" })
		}),
		"node-providerid-outside-namespace": claim(func(t *testing.T, p string) *infrav1.Machine {
			return createMachine(t, p, "w1", func(m *infrav1.Machine) { m.Spec.ProviderID = "homelab://tenant-b/w2" })
		}),
		"node-claimed-twice": claim(func(t *testing.T, p string) *infrav1.Machine {
			createNode(t, p+"-w1", "", optIn(p))
			createMachine(t, p, "w2", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-w1" })
			return createMachine(t, p, "w1", func(m *infrav1.Machine) { m.Spec.KubernetesNodeName = p + "-w1" })
		}),
	})
}
