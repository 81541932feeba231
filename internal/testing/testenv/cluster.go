package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Process is a control-plane component started by a test; it is stopped at the end of the test.
type Process struct {
	cmd *exec.Cmd
	out *SyncBuffer
}

// Output returns what the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// binary returns the path of a control-plane binary, failing the test when it was not built.
func (e *Env) binary(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(e.AssetsDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is not built in %s: run `make controlplane` (%v)", name, e.AssetsDir, err)
	}
	return p
}

func (e *Env) start(t testing.TB, name string, args ...string) *Process {
	t.Helper()
	bin := e.binary(t, name)
	p := &Process{out: &SyncBuffer{}}
	p.cmd = exec.Command(bin, args...) //nolint:gosec // the binary comes from the project's own build
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		if t.Failed() {
			t.Logf("%s output (last 3000 bytes):\n%s", name, tail(p.Output(), 3000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// StartKubeControllerManager runs kube-controller-manager with the given controllers (e.g.
// "job", "serviceaccount") against the test control plane.
func (e *Env) StartKubeControllerManager(t testing.TB, kubeconfig string, controllers string) *Process {
	t.Helper()
	return e.start(t, "kube-controller-manager",
		"--kubeconfig="+kubeconfig,
		"--controllers="+controllers,
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--secure-port=0",
	)
}

// StartScheduler runs kube-scheduler against the test control plane.
func (e *Env) StartScheduler(t testing.TB, kubeconfig string) *Process {
	t.Helper()
	return e.start(t, "kube-scheduler",
		"--kubeconfig="+kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
	)
}

// KwokNodeAnnotation marks a core Node that kwok manages: kwok keeps it Ready and runs (and, for
// Job pods, completes) the pods bound to it.
const KwokNodeAnnotation = "kwok.x-k8s.io/node"

// StartKwok runs kwok with its default stages against the test control plane. It manages only
// core Nodes annotated KwokNodeAnnotation=fake.
func (e *Env) StartKwok(t testing.TB, kubeconfig string) *Process {
	t.Helper()
	stages := e.binary(t, "kwok-stages.yaml")
	return e.start(t, "kwok",
		"--kubeconfig="+kubeconfig,
		"--manage-all-nodes=false",
		fmt.Sprintf("--manage-nodes-with-annotation-selector=%s=fake", KwokNodeAnnotation),
		"--node-lease-duration-seconds=40",
		"--server-address=127.0.0.1:0",
		"--config="+stages,
	)
}
