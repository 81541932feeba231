package cloudprovider_test

import (
	"testing"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

var env *testenv.Env

// testWriter plays the other writers (the lifecycle controller, kubelets, humans), uncached.
var testWriter *optimistic.Writer

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	testenv.RunShared(m, func(e *testenv.Env) {
		env = e
		w, err := optimistic.New(e.Client, e.Client, optimistic.WithMetrics(optimistic.NewMetrics()))
		if err != nil {
			panic(err)
		}
		testWriter = w
	})
}
