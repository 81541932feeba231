// Command homelab-agent acts for the manager on the nodes, as AgentRequests (internal/relay) ask:
// on the host network of the nodes of a LAN segment it sends the Wake-on-LAN magic packets of
// machines the manager cannot reach with a broadcast of its own, and with --shutdown it powers its
// own node off.
package main

import (
	"flag"
	"fmt"
	"os"
	// Embedded as in the manager, so that neither binary depends on the image's zone files.
	_ "time/tzdata"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/agent"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/version"
)

func main() {
	// --kubeconfig is registered on flag.CommandLine by controller-runtime; GetConfig honours
	// it, then KUBECONFIG, then the in-cluster configuration.
	o, zo := agent.BindFlags(flag.CommandLine)
	flag.Parse()
	if err := o.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(zo)))
	log := ctrl.Log.WithName("setup")
	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "loading the Kubernetes configuration")
		os.Exit(1)
	}
	m, err := agent.NewManager(cfg, *o)
	if err == nil {
		log.Info("serving requests", "version", version.String(), "agent", o.Identity(), "segments", o.Segment, "shutdown", o.Shutdown)
		err = m.Start(ctrl.SetupSignalHandler())
	}
	if err != nil {
		log.Error(err, "agent stopped")
		os.Exit(1)
	}
}
