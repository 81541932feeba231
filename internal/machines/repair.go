package machines

import (
	"errors"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// Repair is a Group's spec.repair with every default applied.
type Repair struct {
	ObserveInterval time.Duration
	PowerLoss       infrav1.PowerLossPolicy
	PowerLossGrace  time.Duration
	OutsidePowerOn  infrav1.OutsidePowerOnPolicy
	BootFailure     infrav1.BootFailurePolicy
	// StuckNode is false when the Group does not opt in; the three fields after it apply then.
	StuckNode      bool
	NotReadyFor    time.Duration
	MaxPowerCycles int32
	CycleWindow    time.Duration
}

// RepairOf is g's repair policy with the built-in defaults (docs/reliability.md) for every field
// it leaves unset; a nil Group gets the defaults.
func RepairOf(g *infrav1.Group) Repair {
	r := Repair{
		ObserveInterval: infrav1.DefaultObserveInterval,
		PowerLoss:       infrav1.DefaultPowerLossPolicy,
		PowerLossGrace:  infrav1.DefaultPowerLossGrace,
		OutsidePowerOn:  infrav1.DefaultOutsidePowerOnPolicy,
		BootFailure:     infrav1.DefaultBootFailurePolicy,
		NotReadyFor:     infrav1.DefaultStuckNodeNotReadyFor,
		MaxPowerCycles:  infrav1.DefaultStuckNodeMaxPowerCycles,
		CycleWindow:     infrav1.DefaultStuckNodeWindow,
	}
	if g == nil || g.Spec.Repair == nil {
		return r
	}
	p := g.Spec.Repair
	if p.ObserveInterval != nil {
		r.ObserveInterval = p.ObserveInterval.Duration
	}
	if p.PowerLoss != "" {
		r.PowerLoss = p.PowerLoss
	}
	if p.PowerLossGrace != nil {
		r.PowerLossGrace = p.PowerLossGrace.Duration
	}
	if p.OutsidePowerOn != "" {
		r.OutsidePowerOn = p.OutsidePowerOn
	}
	if p.BootFailure != "" {
		r.BootFailure = p.BootFailure
	}
	if sn := p.StuckNode; sn != nil {
		r.StuckNode = true
		if sn.NotReadyFor != nil {
			r.NotReadyFor = sn.NotReadyFor.Duration
		}
		if sn.MaxPowerCycles != nil {
			r.MaxPowerCycles = *sn.MaxPowerCycles
		}
		if sn.Window != nil {
			r.CycleWindow = sn.Window.Duration
		}
	}
	return r
}

// ErrNoSubstitute means a group has no member that can be powered on in a machine's place.
var ErrNoSubstitute = errors.New("no other member of the group can be powered on")

// ErrDecisionPending means a decision on a machine is recorded in its group's ledger and not yet
// applied: a new one must wait for it.
var ErrDecisionPending = errors.New("a decision on the machine is still being applied")
