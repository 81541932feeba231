package cli

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
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

// explicitNamespace is --namespace when it was given, else "".
func (k *Kube) explicitNamespace() string {
	if k.flags.Namespace == nil {
		return ""
	}
	return *k.flags.Namespace
}

// registerFlagCompletion completes --namespace from the cluster and --context from the
// kubeconfig.
func (k *Kube) registerFlagCompletion(root *cobra.Command) {
	_ = root.RegisterFlagCompletionFunc("namespace", func(c *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		cl, err := k.Client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		list := &corev1.NamespaceList{}
		if err := cl.List(c.Context(), list); err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		for _, ns := range list.Items {
			if strings.HasPrefix(ns.Name, prefix) {
				out = append(out, ns.Name)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
	_ = root.RegisterFlagCompletionFunc("context", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		raw, err := k.flags.ToRawKubeConfigLoader().RawConfig()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		out := make([]cobra.Completion, 0, len(raw.Contexts))
		for name := range raw.Contexts {
			out = append(out, name)
		}
		sort.Strings(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	})
}

// completeNames completes the names of the Machines (machines true) or Groups of the namespace
// the command line selects, leaving out those already on it.
func (k *Kube) completeNames(machines bool) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		names, err := k.names(c.Context(), machines)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		for _, n := range names {
			if strings.HasPrefix(n, prefix) && !slices.Contains(args, n) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// names lists the Machines' or Groups' names in the selected namespace, sorted.
func (k *Kube) names(ctx context.Context, machines bool) ([]string, error) {
	cl, err := k.Client()
	if err != nil {
		return nil, err
	}
	ns, err := k.Namespace()
	if err != nil {
		return nil, err
	}
	var names []string
	if machines {
		list := &infrav1.MachineList{}
		if err := cl.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for _, m := range list.Items {
			names = append(names, m.Name)
		}
	} else {
		list := &infrav1.GroupList{}
		if err := cl.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for _, g := range list.Items {
			names = append(names, g.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// connect is the client and the selected namespace ("" with --all-namespaces).
func (k *Kube) connect() (client.WithWatch, string, error) {
	c, err := k.Client()
	if err != nil {
		return nil, "", err
	}
	ns, err := k.Namespace()
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}
