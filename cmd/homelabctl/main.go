// Command homelabctl is homelab-autoscaler's operator command line; see internal/cli. Installed
// as kubectl-homelab on the PATH, it is the kubectl plugin `kubectl homelab`, and linked as
// kubectl_complete-homelab it completes that plugin's command lines for kubectl.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	// The Groups' energy.timeZone is looked up here, whatever time zones the image ships.
	_ "time/tzdata"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cli"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/dashboard"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	name, args := cli.Invocation(os.Args)
	err := cli.Run(ctx, &cli.Env{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Name: name}, args, dashboard.Command)
	switch {
	case err == nil:
	case errors.Is(err, cli.ErrUsage):
		fmt.Fprintln(os.Stderr, "homelabctl:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "homelabctl:", err)
		os.Exit(1)
	}
}
