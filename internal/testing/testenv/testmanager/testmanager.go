// Package testmanager runs the manager in a test the way the command runs it: through app.New,
// so that a test's manager has production's cache, indexes, writer, controllers, gRPC server
// and probes, and differs only in the app.Options a test sets.
//
// It is a package of its own, not part of testenv, because app imports packages whose own
// in-package tests import testenv.
package testmanager

import (
	"context"
	"flag"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/app"
)

// startTimeout bounds the wait for the gRPC server, which serves once the machines' and Groups'
// informers have synced: a few seconds for a test, minutes for the benchmark's largest fleet.
const startTimeout = 5 * time.Minute

// Options are the command's defaults (as app.BindFlags sets them) for a manager in a test
// process: it watches namespace only, as with --namespace, so machines left by other tests are
// not its business; the gRPC server serves plaintext on a free loopback port; the metrics
// endpoint is off and the probes listen on a free loopback port; several managers may run in the
// process; and it stops within 10 s.
func Options(namespace string) app.Options {
	o, _ := app.BindFlags(flag.NewFlagSet("manager", flag.ContinueOnError))
	o.Namespace = namespace
	o.GRPCAddr, o.GRPCInsecure = "127.0.0.1:0", true
	o.MetricsAddr, o.ProbeAddr = "0", "127.0.0.1:0"
	o.SkipControllerNameValidation = true
	// The simulated BMCs listen on the loopback address, which the drivers' default egress
	// policy refuses.
	if err := o.DriverEgress.Set("allow=127.0.0.1/32"); err != nil {
		panic(err)
	}
	o.ShutdownTimeout = 10 * time.Second
	return *o
}

// Start runs app.New(cfg, o) until the test ends and returns the manager and its gRPC server's
// address once the server listens. stop stops the manager, waits until it has stopped and
// returns what its Start returned; the test's cleanup calls it too (and reports the error when
// the test did not call it).
func Start(t testing.TB, cfg *rest.Config, o app.Options) (m *app.Manager, grpcAddr string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m, err := app.New(ctx, cfg, o)
	if err != nil {
		cancel()
		t.Fatalf("building the manager: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	var (
		once    sync.Once
		stopErr error
	)
	halt := func() { cancel(); stopErr = <-done }
	stop = func() error {
		once.Do(halt)
		return stopErr
	}
	t.Cleanup(func() {
		byCleanup := false
		once.Do(func() { byCleanup = true; halt() })
		if byCleanup && stopErr != nil {
			t.Errorf("manager: %v", stopErr)
		}
	})
	select {
	case <-m.GRPC.Started():
	case err := <-done:
		done <- err // for stop
		t.Fatalf("the manager stopped before its gRPC server served: %v", err)
	case <-time.After(startTimeout):
		t.Fatalf("the manager's gRPC server did not serve within %s", startTimeout)
	}
	return m, m.GRPC.Addr().String(), stop
}
