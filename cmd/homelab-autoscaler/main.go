// Command homelab-autoscaler is the manager: the controllers (machine power lifecycle, Node
// sync, Group status) on the leader, cluster-autoscaler's externalgrpc server on every replica,
// the metrics endpoint and the health probes. Its flags are listed in
// docs/configuration.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"
	// The Groups' energy.timeZone is looked up here, whatever time zones the image ships.
	_ "time/tzdata"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/version"
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
	log.Info("starting homelab-autoscaler", "version", version.String(), "platform", version.Platform())
	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "loading the Kubernetes configuration")
		os.Exit(1)
	}
	ctx := ctrl.SetupSignalHandler()
	exitAfterShutdownTimeout(ctx, o.ShutdownTimeout, log)
	m, err := app.New(ctx, cfg, *o)
	if err == nil {
		err = m.Start(ctx)
	}
	if err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

// hardStopMargin is how long past --shutdown-timeout the process may take to return from the
// graceful path (whose parts each stop within the timeout) before it is ended.
const hardStopMargin = 2 * time.Second

// exitAfterShutdownTimeout ends the process once the shutdown timeout (and the margin) has passed
// since ctx ended, whatever the manager is still waiting on: parts of controller-runtime's
// start-up (the REST mapper's API discovery) take no context and wait for the apiserver for as
// long as it holds the connection, so without this a SIGTERM during start-up against a frozen
// apiserver would leave the process running until the kubelet's SIGKILL, or forever outside a pod.
func exitAfterShutdownTimeout(ctx context.Context, timeout time.Duration, log logr.Logger) {
	context.AfterFunc(ctx, func() {
		time.AfterFunc(timeout+hardStopMargin, func() {
			log.Error(errors.New("the manager did not stop within --shutdown-timeout"), "exiting without a graceful stop",
				"shutdownTimeout", timeout.String(), "margin", hardStopMargin.String())
			os.Exit(1)
		})
	})
}
