package machine

import (
	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/energy"
)

// account advances the machine's energy account in a status write that changes something else:
// the time since the last write is counted as that write recorded it, and the state and draw this
// write leaves are recorded for the time until the next.
func (r *Reconciler) account(s *scope, st *infrav1.MachineStatus) {
	var policy *infrav1.EnergyPolicy
	if s.group != nil {
		policy = s.group.Spec.Energy
	}
	loc, _ := energy.Location(policy)
	st.Energy = energy.Advance(st.Energy, s.now, drawOf(s, st), loc)
}

// drawsPower reports whether a status counts as the machine running: from the recorded power-on
// command until the machine is confirmed off. A machine Ready, booting or shutting down runs
// unless its status driver said it is off (a power loss); a machine off or failed runs only when
// it was observed on.
func drawsPower(st *infrav1.MachineStatus) bool {
	observedOff := st.PowerState == infrav1.PoweredOff && st.PowerStateSource == infrav1.PowerStateFromDriver
	switch st.Progress {
	case infrav1.ProgressStartingUp:
		op := st.Operation
		if op != nil && op.Action == infrav1.PowerActionOn && op.AttemptStartedAt != nil && op.RetryAt == nil {
			// The command goes out right after this write (or went out before it).
			return true
		}
		return st.PowerState == infrav1.PoweredOn
	case infrav1.ProgressReady, infrav1.ProgressShuttingDown:
		return !observedOff
	}
	return st.PowerState == infrav1.PoweredOn
}

// drawOf is the state and draw a status write leaves the machine counted at: the draw measured in
// this reconcile when the driver read it in the state counted, else the one measured before in
// that state, else the configured draw for the state.
func drawOf(s *scope, st *infrav1.MachineStatus) energy.Draw {
	on := drawsPower(st)
	d := energy.Draw{On: on}
	cfg := s.eff.Spec.PowerDraw
	var onCfg, offCfg *float64
	if cfg != nil && cfg.OnWatts != nil {
		w := energy.Watts(cfg.OnWatts)
		onCfg = &w
	}
	if cfg != nil && cfg.OffWatts != nil {
		w := energy.Watts(cfg.OffWatts)
		offCfg = &w
	}
	prev := st.Energy
	switch {
	case s.obs != nil && s.obs.watts != nil && (s.obs.state == infrav1.PoweredOn) == on:
		d.Watts, d.Source, d.MeasuredAt = *s.obs.watts, infrav1.DrawMeasured, s.now
	case prev != nil && prev.WattsSource == infrav1.DrawMeasured && (prev.Drawing == infrav1.PoweredOn) == on:
		// Measured in this state before and not contradicted since: it still holds.
		d.Watts, d.Source = energy.Watts(&prev.Watts), infrav1.DrawMeasured
	case on && onCfg != nil:
		d.Watts, d.Source = *onCfg, infrav1.DrawConfigured
	case on && prev != nil && prev.OnWatts != nil:
		d.Watts, d.Source = energy.Watts(prev.OnWatts), infrav1.DrawConfigured
	case !on && offCfg != nil:
		d.Watts, d.Source = *offCfg, infrav1.DrawConfigured
	default:
		d.Source = infrav1.DrawUnknown
	}
	switch {
	case onCfg != nil:
		d.OnWatts = onCfg
	case on && d.Source == infrav1.DrawMeasured:
		w := d.Watts
		d.OnWatts = &w
	}
	return d
}
