// Command homelab-sim is the virtual homelab: it plays N machines, each with its own BMC on a
// loopback port (Redfish over HTTP, or IPMI over UDP), that register their Nodes after a
// boot delay when powered on and remove them after a shutdown delay when powered off. kwok must
// run against the same cluster to keep those Nodes Ready. See docs/homelab-sim.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/scheme"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/sim"
)

func main() {
	fs := flag.NewFlagSet("homelab-sim", flag.ContinueOnError)
	o := &sim.Options{}
	o.BindFlags(fs)
	var level slog.Level
	fs.TextVar(&level, "log-level", slog.LevelInfo, "Log level: debug (also phase changes), info (power commands, registrations), warn or error.")
	format := fs.String("log-format", "json", "Log format: json or text.")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	if *format != "json" && *format != "text" {
		fmt.Fprintln(os.Stderr, "homelab-sim: --log-format must be json or text")
		os.Exit(2)
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "homelab-sim:", err)
		os.Exit(2)
	}
	// slog, not zap: zap's production sampling drops repeated lines, and a thousand machines
	// booting at once log a thousand similar lines that reliability checks may count.
	handlerOpts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewJSONHandler(os.Stderr, handlerOpts)
	if *format == "text" {
		handler = slog.NewTextHandler(os.Stderr, handlerOpts)
	}
	log := slog.New(handler)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		log.Error("homelab-sim stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o *sim.Options, log *slog.Logger) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return fmt.Errorf("loading the Kubernetes configuration: %w", err)
	}
	// A thousand machines booting at once create a thousand Nodes; client-go's default
	// limit (5 per second) would stretch that over minutes.
	cfg.QPS, cfg.Burst = 200, 400
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return err
	}

	s, err := sim.New(o.Config, c, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := s.Close(); err != nil {
			log.Error("closing the BMCs", "err", err)
		}
		log.Info("stopped; the cluster objects stay")
	}()
	// The debug endpoint binds before the BMCs: thousands of BMC listeners on ephemeral ports
	// could otherwise take the port it was given.
	if o.DebugAddress != "" {
		stopDebug, addr, err := serveDebug(o.DebugAddress, s.DebugHandler())
		if err != nil {
			return err
		}
		defer stopDebug()
		log.Info("debug endpoint", "url", "http://"+addr+"/debug/counters")
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	objs := s.Objects()
	if o.ManifestsFile != "" {
		if err := writeFileAtomically(o.ManifestsFile, objs); err != nil {
			return err
		}
		log.Info("manifests written", "file", o.ManifestsFile)
	}
	if o.Apply {
		w, err := optimistic.New(c, c, optimistic.WithMetrics(optimistic.NewMetrics()))
		if err != nil {
			return err
		}
		start := time.Now()
		if err := sim.Apply(ctx, c, w, objs); err != nil {
			return err
		}
		log.Info("applied the Group, Secrets and Machines", "objects", len(objs.All()), "took", time.Since(start).Round(time.Millisecond).String())
	}
	log.Info("ready", "machines", o.Machines, "group", o.Group, "namespace", o.Namespace)
	<-ctx.Done()
	log.Info("signal received, stopping")
	return nil
}

// writeFileAtomically writes the manifests to a temporary file and renames it into place, so a
// script that waits for the file never reads half of it.
func writeFileAtomically(path string, objs sim.Objects) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".homelab-sim-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) //nolint:errcheck // gone after the rename
	if err := sim.WriteManifests(tmp, objs.All()); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// The file holds BMC passwords.
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// serveDebug serves h on addr and returns how to stop it and the address it got.
func serveDebug(addr string, h http.Handler) (func(), string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("debug endpoint: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return func() { _ = srv.Close() }, l.Addr().String(), nil
}
