package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"

	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

// GRPC is how to reach the cloud-provider gRPC server: cluster-autoscaler's cloud-config
// settings, under the same names.
type GRPC struct {
	address, cert, key, cacert, serverName string
	insecure                               bool
	timeout                                time.Duration
}

// AddFlags binds --address, --cert, --key, --cacert, --server-name, --insecure and --timeout to fs.
func (g *GRPC) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&g.address, "address", "127.0.0.1:8086", "The gRPC server's address (host:port, or unix:///path).")
	fs.StringVar(&g.cert, "cert", "", "Client certificate (PEM), as cluster-autoscaler's cloud-config 'cert'.")
	fs.StringVar(&g.key, "key", "", "Client key (PEM), as cloud-config 'key'.")
	fs.StringVar(&g.cacert, "cacert", "", "CA that signed the server's certificate, as cloud-config 'cacert'.")
	fs.StringVar(&g.serverName, "server-name", "", "The name the server's certificate must carry (default: the host of --address), e.g. its Service's name when --address is a port-forward.")
	fs.BoolVar(&g.insecure, "insecure", false, "Plaintext, for a server started with --grpc-insecure on loopback.")
	fs.DurationVar(&g.timeout, "timeout", 5*time.Second, "Deadline of each call (cluster-autoscaler's default is 5s).")
}

// Timeout is the deadline of each call.
func (g *GRPC) Timeout() time.Duration { return g.timeout }

// Dial connects to the server (lazily, as grpc.NewClient does) with mTLS, or in plaintext with
// --insecure.
func (g *GRPC) Dial() (*grpc.ClientConn, error) { return g.dial() }

func (g *GRPC) dial() (*grpc.ClientConn, error) {
	if g.insecure {
		return grpc.NewClient(g.address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if g.cert == "" || g.key == "" || g.cacert == "" {
		return nil, fmt.Errorf("%w: mTLS needs --cert, --key and --cacert (or --insecure for a loopback server)", ErrUsage)
	}
	pair, err := tls.LoadX509KeyPair(g.cert, g.key)
	if err != nil {
		return nil, fmt.Errorf("loading the client certificate: %w", err)
	}
	caPEM, err := os.ReadFile(g.cacert)
	if err != nil {
		return nil, fmt.Errorf("reading the CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in %s", g.cacert)
	}
	host, _, err := net.SplitHostPort(g.address)
	if err != nil {
		host = g.address
	}
	if g.serverName != "" {
		host = g.serverName
	}
	creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12})
	return grpc.NewClient(g.address, grpc.WithTransportCredentials(creds))
}

func cloudProviderCommand(env *Env, k *Kube) *cobra.Command {
	var g GRPC
	var output string
	// connect dials the server and runs f with a client and a per-call deadline.
	connect := func(ctx context.Context, f func(cp pb.CloudProviderClient, call func() (context.Context, context.CancelFunc)) error) error {
		conn, err := g.dial()
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close() }()
		return f(pb.NewCloudProviderClient(conn), func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, g.timeout) })
	}
	cmd := parent(&cobra.Command{
		Use:   "cloudprovider",
		Short: "Call the cloud-provider gRPC server as cluster-autoscaler does: check, scale-up, scale-down",
		Long: `Calls homelab-autoscaler's gRPC server the way cluster-autoscaler's externalgrpc cloud provider
does, with the same settings as its cloud-config (address, cert, key, cacert): to check what
cluster-autoscaler will see, or to scale a group by hand through the same path.`,
	})
	g.AddFlags(cmd.PersistentFlags())
	checkCmd := &cobra.Command{
		Use:   "check",
		Short: "Every node group as cluster-autoscaler sees it: limits, target, instances, template",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkOutput(output, "table", "json", "yaml"); err != nil {
				return err
			}
			return connect(c.Context(), func(cp pb.CloudProviderClient, call func() (context.Context, context.CancelFunc)) error {
				return check(env, cp, call, output)
			})
		},
	}
	outputFlag(checkCmd, &output, "table", "table", "json", "yaml")
	groupIDs := func(c *cobra.Command, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		ns, err := k.Namespace()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		names, err := k.names(c.Context(), false)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var out []cobra.Completion
		for _, n := range names {
			if id := ns + "/" + n; strings.HasPrefix(id, prefix) {
				out = append(out, id)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	scaleUp := &cobra.Command{
		Use:   "scale-up GROUP N",
		Short: "IncreaseSize(GROUP, N): power on N more machines (GROUP is NAMESPACE/NAME)",
		Args:  exactArgs(2, "GROUP (NAMESPACE/NAME) and N"),
		ValidArgsFunction: func(c *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return groupIDs(c, prefix)
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 1 {
				return usageErr("N must be a positive number, not %q", args[1])
			}
			return connect(c.Context(), func(cp pb.CloudProviderClient, call func() (context.Context, context.CancelFunc)) error {
				cctx, cancel := call()
				defer cancel()
				if _, err := cp.NodeGroupIncreaseSize(cctx, &pb.NodeGroupIncreaseSizeRequest{Id: args[0], Delta: int32(n)}); err != nil { //nolint:gosec // checked above, and a group holds far fewer than 2^31 machines
					return fmt.Errorf("IncreaseSize(%s, +%d): %w", args[0], n, err)
				}
				return printTarget(env, cp, call, args[0], fmt.Sprintf("scaled up by %d", n))
			})
		},
	}
	scaleDown := &cobra.Command{
		Use:   "scale-down GROUP MACHINE...",
		Short: "DeleteNodes(GROUP, MACHINE...): drain and power off these machines",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageErr("scale-down needs GROUP and at least one MACHINE")
			}
			return nil
		},
		ValidArgsFunction: func(c *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return groupIDs(c, prefix)
			}
			return k.completeNames(true)(c, args[1:], prefix)
		},
		RunE: func(c *cobra.Command, args []string) error {
			cl, ns, err := k.connect()
			if err != nil {
				return err
			}
			nodes, err := grpcNodes(c.Context(), cl, ns, args[1:])
			if err != nil {
				return err
			}
			return connect(c.Context(), func(cp pb.CloudProviderClient, call func() (context.Context, context.CancelFunc)) error {
				cctx, cancel := call()
				defer cancel()
				if _, err := cp.NodeGroupDeleteNodes(cctx, &pb.NodeGroupDeleteNodesRequest{Id: args[0], Nodes: nodes}); err != nil {
					return fmt.Errorf("DeleteNodes(%s, %s): %w", args[0], strings.Join(args[1:], ","), err)
				}
				return printTarget(env, cp, call, args[0], "deleted "+strings.Join(args[1:], ", "))
			})
		},
	}
	cmd.AddCommand(checkCmd, scaleUp, scaleDown)
	return cmd
}

func printTarget(env *Env, cp pb.CloudProviderClient, call func() (context.Context, context.CancelFunc), id, what string) error {
	cctx, cancel := call()
	defer cancel()
	ts, err := cp.NodeGroupTargetSize(cctx, &pb.NodeGroupTargetSizeRequest{Id: id})
	if err != nil {
		return fmt.Errorf("TargetSize(%s): %w", id, err)
	}
	fmt.Fprintf(env.Out, "%s: %s; target size now %d\n", id, what, ts.TargetSize)
	return nil
}

// CheckGroup is what cluster-autoscaler would see of one node group.
type CheckGroup struct {
	ID        string          `json:"id"`
	Min       int32           `json:"min"`
	Max       int32           `json:"max"`
	Target    int32           `json:"target"`
	Instances []CheckInstance `json:"instances"`
	Template  string          `json:"template"`
	Error     string          `json:"error,omitempty"`
}

// CheckInstance is one instance of a node group as cluster-autoscaler sees it.
type CheckInstance struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

func check(env *Env, cp pb.CloudProviderClient, call func() (context.Context, context.CancelFunc), output string) error {
	out, err := checkNodeGroups(cp, call)
	if err != nil {
		return err
	}
	switch output {
	case "json":
		return writeJSON(env.Out, out)
	case "yaml":
		return writeYAML(env.Out, out)
	}
	for _, g := range out {
		fmt.Fprintf(env.Out, "group %s: min %d, max %d, target %d; template: %s\n", g.ID, g.Min, g.Max, g.Target, g.Template)
		if g.Error != "" {
			fmt.Fprintf(env.Out, "  error: %s\n", g.Error)
		}
		rows := [][]string{}
		for _, in := range g.Instances {
			rows = append(rows, []string{"  " + in.ID, in.State, dash(in.Error)})
		}
		table(env.Out, []string{"  INSTANCE", "STATE", "ERROR"}, rows)
	}
	if len(out) == 0 {
		fmt.Fprintln(env.Out, "no node groups: cluster-autoscaler would have nothing to scale")
	}
	return nil
}

// CheckNodeGroups asks the server what cluster-autoscaler asks it in a loop: NodeGroups, then
// each group's TargetSize, Nodes and TemplateNodeInfo, each call within timeout. A group's
// failed calls are in its Error; the error is NodeGroups' own.
func CheckNodeGroups(ctx context.Context, cp pb.CloudProviderClient, timeout time.Duration) ([]CheckGroup, error) {
	return checkNodeGroups(cp, func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, timeout) })
}

func checkNodeGroups(cp pb.CloudProviderClient, call func() (context.Context, context.CancelFunc)) ([]CheckGroup, error) {
	cctx, cancel := call()
	defer cancel()
	resp, err := cp.NodeGroups(cctx, &pb.NodeGroupsRequest{})
	if err != nil {
		return nil, fmt.Errorf("NodeGroups: %w", err)
	}
	out := []CheckGroup{}
	for _, g := range resp.GetNodeGroups() {
		out = append(out, checkGroup(cp, call, g))
	}
	return out, nil
}

func checkGroup(cp pb.CloudProviderClient, call func() (context.Context, context.CancelFunc), g *pb.NodeGroup) CheckGroup {
	cg := CheckGroup{ID: g.GetId(), Min: g.GetMinSize(), Max: g.GetMaxSize(), Instances: []CheckInstance{}}
	var errs []string
	ctx, cancel := call()
	defer cancel()
	if ts, err := cp.NodeGroupTargetSize(ctx, &pb.NodeGroupTargetSizeRequest{Id: g.GetId()}); err != nil {
		errs = append(errs, "TargetSize: "+err.Error())
	} else {
		cg.Target = ts.GetTargetSize()
	}
	if nodes, err := cp.NodeGroupNodes(ctx, &pb.NodeGroupNodesRequest{Id: g.GetId()}); err != nil {
		errs = append(errs, "Nodes: "+err.Error())
	} else {
		for _, in := range nodes.GetInstances() {
			ci := CheckInstance{ID: in.GetId(), State: stateName(in.GetStatus().GetInstanceState())}
			if e := in.GetStatus().GetErrorInfo(); e != nil {
				ci.Error = fmt.Sprintf("%s (class %d): %s", e.GetErrorCode(), e.GetInstanceErrorClass(), e.GetErrorMessage())
			}
			cg.Instances = append(cg.Instances, ci)
		}
	}
	tpl, err := cp.NodeGroupTemplateNodeInfo(ctx, &pb.NodeGroupTemplateNodeInfoRequest{Id: g.GetId()})
	switch {
	case err != nil:
		cg.Template = "unavailable (" + err.Error() + ")"
	default:
		node := &corev1.Node{}
		if err := node.Unmarshal(tpl.GetNodeBytes()); err != nil {
			cg.Template = "DOES NOT DECODE: " + err.Error()
		} else {
			pods := node.Status.Allocatable[corev1.ResourcePods]
			cg.Template = fmt.Sprintf("decodes (cpu %s, memory %s, pods %s, %d labels, %d taints)",
				qty(node.Status.Allocatable, corev1.ResourceCPU), qty(node.Status.Allocatable, corev1.ResourceMemory),
				pods.String(), len(node.Labels), len(node.Spec.Taints))
		}
	}
	cg.Error = strings.Join(errs, "; ")
	return cg
}

func qty(l corev1.ResourceList, name corev1.ResourceName) string {
	q, ok := l[name]
	if !ok {
		return "none"
	}
	return q.String()
}

func stateName(s pb.InstanceStatus_InstanceState) string {
	switch s {
	case pb.InstanceStatus_instanceRunning:
		return "running"
	case pb.InstanceStatus_instanceCreating:
		return "creating"
	case pb.InstanceStatus_instanceDeleting:
		return "deleting"
	default:
		return "unspecified"
	}
}
