package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cli"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// status --watch prints the status once, then again when a Machine changes (and only then), and
// ends without an error when interrupted.
func TestStatusWatch(t *testing.T) {
	const ns = "status-watch"
	ctx := context.Background()
	if err := createNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workers"}}); err != nil {
		t.Fatal(err)
	}
	m := machine("w1")
	m.Namespace = ns
	if err := env.Client.Create(ctx, m); err != nil {
		t.Fatal(err)
	}

	out := &testenv.SyncBuffer{}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- cli.Run(wctx, &cli.Env{Out: out, Err: io.Discard}, []string{"status", "--watch", "--kubeconfig", kubeconfig, "-n", ns, "-o", "json"})
	}()
	docs := func() []cli.Status {
		var all []cli.Status
		dec := json.NewDecoder(strings.NewReader(out.String()))
		for {
			var st cli.Status
			if err := dec.Decode(&st); err != nil {
				return all
			}
			all = append(all, st)
		}
	}
	testenv.Eventually(t, 30*time.Second, "the first status", func() bool { return len(docs()) >= 1 })
	if first := docs()[0]; len(first.Machines) != 1 || first.Machines[0].Online {
		t.Fatalf("first status: %+v", first)
	}

	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(m), m); err != nil {
		t.Fatal(err)
	}
	m.Spec.Online = true
	if err := env.Client.Update(ctx, m); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "a status with w1 online", func() bool {
		all := docs()
		last := all[len(all)-1]
		return len(all) >= 2 && len(last.Machines) == 1 && last.Machines[0].Online
	})
	stop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("status --watch ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("status --watch did not end when interrupted")
	}
}
