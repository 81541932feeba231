package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/types"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cli"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

// DefaultAddress is where the dashboard listens unless told otherwise: loopback only.
const DefaultAddress = "127.0.0.1:8089"

// grpcPrefix renames cli.GRPC's flags: --address is the dashboard's own.
const grpcPrefix = "grpc-"

// Command is `homelabctl dashboard`, reaching the cluster through k (the root's connection
// flags).
func Command(k *cli.Kube) *cobra.Command {
	var (
		address                 string
		allowRemote, allowPower bool
		caStatus                string
		g                       cli.GRPC
	)
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "A live web page of the Groups, Machines, energy, cluster-autoscaler's view and Events",
		Long: `Serves a web page on this machine, like kubectl proxy, that shows the Groups and Machines of the
namespace as 'homelabctl status' does, each machine's power over the last 24 hours, the energy
used and saved per group, what the cloud-provider gRPC server tells cluster-autoscaler (with the
--grpc- flags), cluster-autoscaler's status ConfigMap, and the latest Events. The page updates
itself as Kubernetes watches report changes.

It reads with your kubeconfig's credentials and RBAC and adds nothing to the cluster. It listens
on 127.0.0.1 only, unless --allow-remote. Power buttons appear only with --allow-power; they set
spec.online as 'homelabctl power' does. Ctrl-C stops it.`,
		Example: `  homelabctl dashboard -n homelab-machines
  homelabctl dashboard --allow-power --grpc-address 127.0.0.1:8086 --grpc-insecure`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ca, err := parseConfigMapName(caStatus)
			if err != nil {
				return err
			}
			remote, err := checkAddress(address, allowRemote)
			if err != nil {
				return err
			}
			kc, err := k.Client()
			if err != nil {
				return err
			}
			ns, err := k.Namespace()
			if err != nil {
				return err
			}
			opts := Options{Client: kc, Namespace: ns, AllowPower: allowPower, CAStatus: ca, CallTimeout: g.Timeout()}
			if grpcAsked(c.Flags()) {
				conn, err := g.Dial()
				if err != nil {
					return err
				}
				defer func() { _ = conn.Close() }()
				opts.CloudProvider = pb.NewCloudProviderClient(conn)
			}
			s, err := New(opts)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", address)
			if err != nil {
				return fmt.Errorf("listening on %s: %w", address, err)
			}
			if remote {
				fmt.Fprintf(c.ErrOrStderr(), "warning: the dashboard listens on %s, beyond this machine: whoever reaches it sees what your credentials can read", ln.Addr())
				if allowPower {
					fmt.Fprint(c.ErrOrStderr(), ", and can power machines on and off")
				}
				fmt.Fprintln(c.ErrOrStderr())
			}
			scope := "namespace " + ns
			if ns == "" {
				scope = "all namespaces"
			}
			fmt.Fprintf(c.OutOrStdout(), "Dashboard of %s at http://%s/ (Ctrl-C to stop)\n", scope, displayAddress(address, ln.Addr()))
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return Serve(ctx, s, ln)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&address, "address", DefaultAddress, "Address to serve the page on (IP:port, or localhost:port).")
	fs.BoolVar(&allowRemote, "allow-remote", false, "Allow --address to be other than a loopback address. Whoever reaches the page then sees what your credentials can read (and, with --allow-power, can power machines).")
	fs.BoolVar(&allowPower, "allow-power", false, "Show power on/off buttons, which set a Machine's spec.online with your credentials.")
	fs.StringVar(&caStatus, "ca-status-configmap", "kube-system/cluster-autoscaler-status", "cluster-autoscaler's status ConfigMap, NAMESPACE/NAME; empty to show none.")
	k.AddAllNamespacesFlag(fs)
	addGRPCFlags(&g, fs)
	return cmd
}

// addGRPCFlags binds cli.GRPC's flags to fs with the grpc- prefix (its --address would clash
// with the dashboard's).
func addGRPCFlags(g *cli.GRPC, fs *pflag.FlagSet) {
	own := pflag.NewFlagSet("grpc", pflag.ContinueOnError)
	g.AddFlags(own)
	own.VisitAll(func(f *pflag.Flag) {
		fs.AddFlag(&pflag.Flag{
			Name: grpcPrefix + f.Name, Usage: f.Usage,
			Value: f.Value, DefValue: f.DefValue, NoOptDefVal: f.NoOptDefVal,
		})
	})
}

// grpcAsked is true when any --grpc- flag was given: the dashboard then asks the gRPC server.
func grpcAsked(fs *pflag.FlagSet) bool {
	asked := false
	fs.Visit(func(f *pflag.Flag) {
		if strings.HasPrefix(f.Name, grpcPrefix) {
			asked = true
		}
	})
	return asked
}

// parseConfigMapName reads NAMESPACE/NAME; "" names none.
func parseConfigMapName(s string) (types.NamespacedName, error) {
	if s == "" {
		return types.NamespacedName{}, nil
	}
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return types.NamespacedName{}, fmt.Errorf("%w: --ca-status-configmap must be NAMESPACE/NAME, not %q", cli.ErrUsage, s)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// checkAddress checks the listen address: an IP address or localhost, with a port; one that is
// not loopback only with allowRemote. remote says it is not loopback.
func checkAddress(address string, allowRemote bool) (remote bool, err error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil || port == "" {
		return false, fmt.Errorf("%w: --address must be IP:PORT or localhost:PORT, not %q", cli.ErrUsage, address)
	}
	if strings.EqualFold(host, "localhost") {
		return false, nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false, fmt.Errorf("%w: --address must be IP:PORT or localhost:PORT, not %q (a host name could resolve anywhere)", cli.ErrUsage, address)
	}
	if ip.IsLoopback() {
		return false, nil
	}
	if !allowRemote {
		return true, fmt.Errorf("%w: --address %s is not a loopback address: the page shows what your credentials can read to whoever reaches it; pass --allow-remote to serve it beyond this machine", cli.ErrUsage, address)
	}
	return true, nil
}

// displayAddress is the address to open: as given for localhost, else where it listens.
func displayAddress(asked string, got net.Addr) string {
	host, _, _ := net.SplitHostPort(asked)
	_, port, _ := net.SplitHostPort(got.String())
	if strings.EqualFold(host, "localhost") {
		return net.JoinHostPort("localhost", port)
	}
	return got.String()
}

// Serve serves s's page on ln and runs s until ctx ends, then stops serving.
func Serve(ctx context.Context, s *Server, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()
	var err error
	select {
	case err = <-served:
		// Serve only returns early when it cannot accept connections.
		err = fmt.Errorf("serving the dashboard on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	cancel()
	runErr := <-ran
	shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	if serr := srv.Shutdown(shutdown); serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("stopping the dashboard: %w", serr)
	}
	return errors.Join(err, runErr)
}
