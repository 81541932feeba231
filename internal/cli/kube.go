package cli

import (
	"flag"
	"fmt"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/scheme"
)

// kubeFlags are the flags of commands that talk to the Kubernetes API.
type kubeFlags struct {
	kubeconfig string
	namespace  string
}

func (k *kubeFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "Path to a kubeconfig (default: $KUBECONFIG, then ~/.kube/config).")
	fs.StringVar(&k.namespace, "n", "", "Namespace (default: the kubeconfig's; with status, empty lists all).")
}

func (k *kubeFlags) client() (client.WithWatch, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if k.kubeconfig != "" {
		rules.ExplicitPath = k.kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("loading the kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", err
	}
	if k.namespace != "" {
		ns = k.namespace
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme.New()})
	return c, ns, err
}
