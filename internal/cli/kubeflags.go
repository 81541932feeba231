package cli

import (
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/scheme"
)

// Kube is the connection to the cluster that kubectl's standard flags describe (--kubeconfig,
// --context, --namespace/-n, --as and the rest), plus --all-namespaces/-A for the commands that
// list. Every command reaches the API through it, with the user's own credentials and RBAC.
type Kube struct {
	flags         *genericclioptions.ConfigFlags
	allNamespaces bool
}

// NewKube returns a Kube whose flags are not yet bound.
func NewKube() *Kube {
	return &Kube{flags: genericclioptions.NewConfigFlags(true)}
}

// AddFlags binds kubectl's connection flags to fs (the root command's persistent flags).
func (k *Kube) AddFlags(fs *pflag.FlagSet) {
	k.flags.AddFlags(fs)
}

// AddAllNamespacesFlag binds -A/--all-namespaces to fs, for a command that lists.
func (k *Kube) AddAllNamespacesFlag(fs *pflag.FlagSet) {
	fs.BoolVarP(&k.allNamespaces, "all-namespaces", "A", false, "All namespaces (overrides --namespace).")
}

// RESTConfig is the client configuration the flags and the kubeconfig give.
func (k *Kube) RESTConfig() (*rest.Config, error) {
	cfg, err := k.flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	return cfg, nil
}

// Client is a client for the project's kinds and the core kinds, with watches.
func (k *Kube) Client() (client.WithWatch, error) {
	cfg, err := k.RESTConfig()
	if err != nil {
		return nil, err
	}
	return client.NewWithWatch(cfg, client.Options{Scheme: scheme.New()})
}

// Namespace is --namespace, else the kubeconfig context's namespace, else "default"; it is ""
// with --all-namespaces.
func (k *Kube) Namespace() (string, error) {
	if k.allNamespaces {
		return "", nil
	}
	ns, _, err := k.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("loading the kubeconfig: %w", err)
	}
	return ns, nil
}
