// Package testenv starts a real control plane (etcd + kube-apiserver, built by the tools module)
// with the project's CRDs installed, for tests of every package. One control plane serves a
// whole test package: start it from TestMain with Run.
//
// Missing binaries are a hard failure, never a skip: `make test` builds them first, and a test
// run that silently skipped the API tests would prove nothing.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	projectscheme "github.com/homelab-autoscaler/homelab-autoscaler/internal/scheme"
)

// AssetsEnv names the environment variable that points at the control-plane binaries.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// Env is a running control plane and clients for it.
type Env struct {
	// Config reaches the apiserver as an administrator.
	Config *rest.Config
	// Client is a controller-runtime client (no cache) with the project's scheme.
	Client client.WithWatch
	// Clientset is a typed client-go clientset.
	Clientset kubernetes.Interface
	// Scheme knows the core kinds and the project's kinds.
	Scheme *k8sruntime.Scheme
	// AssetsDir holds the control-plane binaries the Env was started from.
	AssetsDir string

	env *envtest.Environment
	// certDir holds the apiserver's certificates when the Env may restart it (StartRestartable).
	certDir string
}

// RepoRoot returns the root of the repository (the folder holding go.mod).
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the testenv source file")
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above " + filepath.Dir(file))
		}
		dir = parent
	}
}

// AssetsDir returns the folder with the control-plane binaries, checking that the ones envtest
// needs are there.
func AssetsDir() (string, error) {
	dir := os.Getenv(AssetsEnv)
	if dir == "" {
		return "", fmt.Errorf("%s is not set: run the tests with `make test`, which builds the control plane and sets it", AssetsEnv)
	}
	for _, bin := range []string{"etcd", "kube-apiserver"} {
		if fi, err := os.Stat(filepath.Join(dir, bin)); err != nil || fi.IsDir() {
			return "", fmt.Errorf("control-plane binary %s missing in %s (%s): run `make controlplane`", bin, dir, AssetsEnv)
		}
	}
	return dir, nil
}

// Start starts etcd and kube-apiserver and installs the CRDs from config/crd/bases.
func Start() (*Env, error) { return start("") }

// start is Start with the apiserver's certificates in certDir (empty: a temporary folder
// envtest removes when the apiserver stops).
func start(certDir string) (*Env, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	scheme := projectscheme.New()
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
		Scheme:                   scheme,
	}
	if certDir != "" {
		env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certDir}
	}
	cfg, err := env.Start()
	if err != nil {
		// Start may fail after etcd and the apiserver run (a CRD the apiserver refuses): stop
		// them, or they outlive the test process.
		_ = env.Stop()
		return nil, fmt.Errorf("starting the control plane from %s: %w", assets, err)
	}
	// Tests create many objects quickly; the default client-side limit would throttle them.
	cfg.QPS, cfg.Burst = 1000, 2000
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, Clientset: cs, Scheme: scheme, AssetsDir: assets, env: env}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error {
	err := e.env.Stop()
	if e.certDir != "" {
		_ = os.RemoveAll(e.certDir)
	}
	return err
}

// RESTMapper returns a mapper that discovers the apiserver's kinds, CRDs included.
func (e *Env) RESTMapper() meta.RESTMapper { return e.Client.RESTMapper() }

// Run is a TestMain body: it starts the control plane, hands it to set, runs the package's
// tests and stops it. A control plane that cannot start fails the package loudly.
func Run(m *testing.M, set func(*Env)) { run(m, Start, set) }

func run(m *testing.M, startEnv func() (*Env, error), set func(*Env)) {
	env, err := startEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: cannot start the test control plane: %v\n", err)
		os.Exit(1)
	}
	set(env)
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping the test control plane: %v\n", err)
	}
	os.Exit(code)
}

// WriteKubeconfig writes an administrator kubeconfig for the control plane into dir and returns
// its path, for tools run as separate processes (kubectl, kwok, the manager).
func (e *Env) WriteKubeconfig(dir string) (string, error) {
	user, err := e.env.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// Node reads the Node name from the apiserver: nil when there is none.
func (e *Env) Node(t testing.TB, name string) *corev1.Node {
	t.Helper()
	node := &corev1.Node{}
	err := e.Client.Get(context.Background(), client.ObjectKey{Name: name}, node)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("reading Node %s: %v", name, err)
	}
	return node
}
