package testenv

import (
	"fmt"
	"os"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	projectscheme "github.com/homelab-autoscaler/homelab-autoscaler/internal/scheme"
)

// SharedKubeconfigEnv names the environment variable through which a test process hands its
// control plane to the fuzz workers that `go test -fuzz` starts.
const SharedKubeconfigEnv = "HOMELAB_AUTOSCALER_TEST_KUBECONFIG"

// RunShared is Run for a package with fuzz targets that need the control plane. `go test -fuzz`
// runs the package in a coordinating process and in worker processes that it starts, and stops
// or kills at will (to minimize an input, or at the end). A worker killed while running its own
// etcd and kube-apiserver would leave them behind, and they would hold the worker's pipes open so
// that the coordinator waits for ever. So the first process starts the control plane, and the
// workers, which inherit its environment, connect to it and start nothing.
func RunShared(m *testing.M, set func(*Env)) {
	if path := os.Getenv(SharedKubeconfigEnv); path != "" {
		env, err := connect(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: cannot reach the shared test control plane: %v\n", err)
			os.Exit(1)
		}
		set(env)
		os.Exit(m.Run())
	}
	env, err := Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: cannot start the test control plane: %v\n", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "testenv-shared-")
	if err == nil {
		var path string
		if path, err = env.WriteKubeconfig(dir); err == nil {
			err = os.Setenv(SharedKubeconfigEnv, path)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: cannot share the test control plane: %v\n", err)
		_ = env.Stop()
		os.Exit(1)
	}
	set(env)
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the test control plane: %v\n", err)
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// connect builds an Env for a running control plane. It cannot stop it or add users.
func connect(kubeconfig string) (*Env, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	scheme := projectscheme.New()
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Env{Config: cfg, Client: c, Clientset: cs, Scheme: scheme, AssetsDir: assets}, nil
}
