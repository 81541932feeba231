package machines_test

import (
	"testing"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// env serves the lookup tests, which read through an informer cache as the manager does.
var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Run(m, func(e *testenv.Env) { env = e })
}
