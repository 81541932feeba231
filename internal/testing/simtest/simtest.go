// Package simtest runs homelab-sim inside a test, as the tests of the simulator, the dashboard,
// the end-to-end and the repair suites all do.
package simtest

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// Run starts a simulator of cfg, logging into the test, and stops it when the test ends,
// deleting its machines' core Nodes so a later test of the shared apiserver starts without them.
func Run(t *testing.T, c client.Client, cfg sim.Config) *sim.Sim {
	t.Helper()
	s, err := sim.New(cfg, c, testenv.TestLogger(t, "simulator"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing the simulator: %v", err)
		}
		for _, m := range s.Machines() {
			_ = c.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: m.Name}})
		}
	})
	return s
}
