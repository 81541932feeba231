package deploytest_test

import (
	"testing"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Run(m, func(e *testenv.Env) { env = e })
}
