package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/machines"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/power"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/relay"
)

// wolTestTimeout is how long a relayed test wake may wait for an agent.
const wolTestTimeout = 30 * time.Second

func wolCommand(env *Env, k *Kube) *cobra.Command {
	cmd := parent(&cobra.Command{
		Use:   "wol",
		Short: "Wake-on-LAN: test a machine's wake path",
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "test MACHINE",
		Short: "Send a machine's wake through its configured path and say which homelab-agent sent it",
		Long: `Sends Machine MACHINE's wake through its configured path. With wakeOnLAN.via, it records a
request as the manager would and reports the homelab-agent that sent it (or that none did);
without it, the manager sends the packets itself, and homelabctl sends the same ones from here,
which tells whether this host's network reaches the machine.`,
		Args:              exactArgs(1, "a Machine name"),
		ValidArgsFunction: k.completeNames(true),
		RunE: func(c *cobra.Command, args []string) error {
			cl, ns, err := k.connect()
			if err != nil {
				return err
			}
			return wolTest(c.Context(), env, cl, ns, args[0])
		},
	})
	return cmd
}

// wolTest is `homelabctl wol test MACHINE`: a wake through the Machine's configured path.
func wolTest(ctx context.Context, env *Env, c client.WithWatch, ns, name string) error {
	m := &infrav1.Machine{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, m); err != nil {
		return fmt.Errorf("reading Machine %s/%s: %w", ns, name, err)
	}
	g := &infrav1.Group{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: m.Spec.Group}, g); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading Group %s/%s: %w", ns, m.Spec.Group, err)
	}
	eff := machines.Effective(m, g)
	slot, ok := power.SlotFor(eff, power.ActionOn)
	if !ok || slot.WakeOnLAN == nil {
		return fmt.Errorf("machine %s/%s is not powered on by Wake-on-LAN (its power-on driver: %s)", ns, name, dash(slot.DriverName()))
	}
	cfg := slot.WakeOnLAN
	port := cfg.Port
	if port == 0 {
		port = infrav1.DefaultWakeOnLANPort
	}
	target := net.JoinHostPort(cfg.BroadcastAddress, strconv.Itoa(int(port)))
	if cfg.Via == "" {
		out, err := power.WakeOnLAN{}.Do(ctx, power.Request{Machine: eff, Action: power.ActionOn, Slot: slot, Secrets: power.ClientSecrets{Reader: c}})
		if err != nil {
			return fmt.Errorf("sending from this host: %w", err)
		}
		fmt.Fprintf(env.Out, "Machine %s/%s has no wakeOnLAN.via: the manager sends its packets itself. From this host: %s\n", ns, name, out.Detail)
		return nil
	}
	now := time.Now()
	r, err := relay.Request(ctx, c, relay.Wake{
		Namespace: ns, Machine: name, Segment: cfg.Via, MAC: cfg.MAC, Target: target,
		Attempt: 1, Started: now, Deadline: now.Add(wolTestTimeout),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Out, "Asked the homelab-agents of segment %s to wake %s (%s to %s): request %s\n", cfg.Via, name, cfg.MAC, target, r.Name)
	// The request is not the Machine's (the machine controller keeps only its attempts'): it goes
	// once it is answered.
	defer func() { _ = c.Delete(context.WithoutCancel(ctx), r) }()
	return waitAgent(ctx, env, c, r)
}

// waitAgent watches a request until its verdict: an agent's answer, or the deadline passing with
// none.
func waitAgent(ctx context.Context, env *Env, c client.WithWatch, r *infrav1.AgentRequest) error {
	w, err := c.Watch(ctx, &infrav1.AgentRequestList{}, client.InNamespace(r.Namespace),
		client.MatchingFields{"metadata.name": r.Name})
	if err != nil {
		return fmt.Errorf("watching request %s: %w", r.Name, err)
	}
	defer w.Stop()
	for {
		v := relay.Read(r, time.Now())
		switch {
		case v.Done:
			fmt.Fprintf(env.Out, "Sent: %s\n", v.Detail)
			return nil
		case v.Failed != "":
			if err := relay.Abandon(ctx, c, r, v.Failed); err != nil && !errors.Is(err, relay.ErrLost) {
				return err
			}
			return errors.New(v.Failed)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(v.RecheckAfter):
		case ev, ok := <-w.ResultChan():
			if !ok {
				return fmt.Errorf("the watch of request %s ended", r.Name)
			}
			if got, ok := ev.Object.(*infrav1.AgentRequest); ok {
				r = got
			}
		}
	}
}
