// Command homelab-autoscaler is the manager: the controllers (machine power lifecycle, Node
// sync, Group status) on the leader, cluster-autoscaler's externalgrpc server on every replica,
// the metrics endpoint and the health probes. Its flags are listed in
// docs/configuration.md.
package main

import (
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
)

func main() {
	// --kubeconfig is registered on flag.CommandLine by controller-runtime; GetConfig honours
	// it, then KUBECONFIG, then the in-cluster configuration.
	o, zo := app.BindFlags(flag.CommandLine)
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
	ctx := ctrl.SetupSignalHandler()
	m, err := app.New(ctx, cfg, *o)
	if err == nil {
		err = m.Start(ctx)
	}
	if err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}
