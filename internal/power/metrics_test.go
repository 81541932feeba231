package power

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// scriptedDriver answers what it is told, like an asynchronous driver (the Job driver) might.
type scriptedDriver struct {
	outcome Outcome
	err     error
}

func (scriptedDriver) Name() string { return DriverJob }

func (d scriptedDriver) Do(context.Context, Request) (Outcome, error) { return d.outcome, d.err }

func (d scriptedDriver) Status(context.Context, Request) (infrav1.PowerState, error) {
	return infrav1.PowerUnknown, d.err
}

func TestInstrumentCountsAndTimesEveryDriver(t *testing.T) {
	t.Parallel()
	m := NewMetrics()
	ctx := context.Background()

	pending := Instrument(scriptedDriver{outcome: Outcome{Done: false, Detail: "job running"}}, m)
	if pending.Name() != DriverJob {
		t.Fatalf("the wrapper must keep the driver's name, got %q", pending.Name())
	}
	_, _ = pending.Do(ctx, Request{Action: ActionOn})
	_, _ = Instrument(scriptedDriver{outcome: Outcome{Done: true}}, m).Do(ctx, Request{Action: ActionOn})
	failing := Instrument(scriptedDriver{err: Errorf(DriverJob, ActionOff, ClassFailed, "job failed")}, m)
	_, _ = failing.Do(ctx, Request{Action: ActionOff})
	_, _ = failing.Status(ctx, Request{Action: ActionStatus})

	// A real driver, through the same wrapper.
	c, port := wolListener(t)
	wol := Instrument(WakeOnLAN{}, m)
	if _, err := wol.Do(ctx, request(ActionOn, wolSlot(port), nil)); err != nil {
		t.Fatal(err)
	}
	_, _ = wol.Status(ctx, request(ActionStatus, wolSlot(port), nil))
	receive(t, c, 100*time.Millisecond)

	for _, tc := range []struct {
		driver, action, result string
		want                   float64
	}{
		{DriverJob, "on", ResultPending, 1},
		{DriverJob, "on", ResultSuccess, 1},
		{DriverJob, "off", string(ClassFailed), 1},
		{DriverJob, "status", string(ClassFailed), 1},
		{DriverWakeOnLAN, "on", ResultSuccess, 1},
		{DriverWakeOnLAN, "status", string(ClassUnsupported), 1},
	} {
		if got := testutil.ToFloat64(m.Operations.WithLabelValues(tc.driver, tc.action, tc.result)); got != tc.want {
			t.Errorf("operations{%s,%s,%s} = %v, want %v", tc.driver, tc.action, tc.result, got, tc.want)
		}
	}
	// One histogram per driver and action: job on, off, status; wakeOnLAN on, status.
	if n := testutil.CollectAndCount(m.Duration); n != 5 {
		t.Errorf("duration series: %d, want 5", n)
	}
}

func TestDefaultMetricsAreRegistered(t *testing.T) {
	t.Parallel()
	_, _ = Instrument(scriptedDriver{outcome: Outcome{Done: true}}, nil).Do(context.Background(), Request{Action: ActionOn})
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, f := range families {
		found[f.GetName()] = true
	}
	for _, name := range []string{"homelab_autoscaler_power_operations_total", "homelab_autoscaler_power_operation_duration_seconds"} {
		if !found[name] {
			t.Errorf("%s is not on controller-runtime's metrics registry", name)
		}
	}
}
