// Package power holds the one driver interface through which machines are powered on and off,
// the classified errors drivers return, and the registry that picks a driver for a Machine's
// BMC or its power.start, power.stop or power.status slot. Each driver lives in its own file.
package power

import (
	"context"
	"errors"
	"fmt"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// Action is what a driver is asked to do: the API's power actions, and reading the power state.
// It is the API's type, so the action recorded in status.operation is the action a driver runs.
type Action = infrav1.PowerAction

const (
	// ActionOn powers the machine on.
	ActionOn = infrav1.PowerActionOn
	// ActionOff powers the machine off.
	ActionOff = infrav1.PowerActionOff
	// ActionStatus reads the machine's power state. It is never recorded in status.
	ActionStatus Action = "status"
)

// Request is one call to a driver.
type Request struct {
	// Machine is the machine as last read, with its Group's defaults applied; drivers must not
	// modify it.
	Machine *infrav1.Machine
	// Action is what to do.
	Action Action
	// Slot is the driver configuration for this action.
	Slot Slot
	// Attempt numbers the power-on or power-off attempt (from 1). A driver that starts
	// something asynchronous (a Job) names it after the attempt, so that a repeated call for the
	// same attempt never starts a second one.
	Attempt int32
	// AttemptStarted is when the attempt was recorded (status.operation.attemptStartedAt): a
	// driver that asks a homelab-agent names the request after it.
	AttemptStarted time.Time
	// Secrets reads credentials at call time.
	Secrets SecretReader
	// ConfigMaps reads CA bundles that a caBundleRef places in a ConfigMap. It may be nil when no
	// driver of the Node refers to a ConfigMap.
	ConfigMaps ConfigMapReader
}

// Outcome says how far an action has come.
type Outcome struct {
	// Done is true when the action finished: the BMC accepted the command, or the Job succeeded.
	// A driver that works asynchronously returns Done false until then; the caller comes back
	// when the work it started changes (a Job is watched), never by polling.
	Done bool
	// Detail is a short human description ("job node-1-on-2 running").
	Detail string
	// RecheckAfter, for an outcome not Done, is when it may change by the clock alone (a relayed
	// wake nobody took by its deadline); zero when only a watched change can change it.
	RecheckAfter time.Duration
}

// Async reports whether s's action runs asynchronously (a Job, a wake relayed through a
// homelab-agent): its outcome comes back through a watch, and the caller asks again for it.
func Async(s Slot) bool {
	return s.Job != nil || s.Agent != nil || (s.WakeOnLAN != nil && s.WakeOnLAN.Via != "")
}

// Driver powers machines through one mechanism.
type Driver interface {
	// Name is the driver's name in the API, metrics and events: "wakeOnLAN", "ipmi", "job", ...
	Name() string
	// Do performs ActionOn or ActionOff. It returns an *Error for failures.
	Do(ctx context.Context, req Request) (Outcome, error)
	// Status reads the power state (ActionStatus). Drivers that cannot return an *Error of
	// class ClassUnsupported.
	Status(ctx context.Context, req Request) (infrav1.PowerState, error)
}

// Reading is what one status visit to a machine's BMC or plug tells: its power state and, where
// the device measures it, its power draw.
type Reading struct {
	// State is the power state.
	State infrav1.PowerState
	// Watts is the draw the device reported; nil when it reports none (no sensor, no reading
	// configured, or a reading it marks unavailable).
	Watts *float64
}

// Meter is a driver that reads the power draw in the same visit as the power state. A reading
// that fails while the state was read is not an error: Read returns the state with Watts nil,
// so that a BMC without a power sensor is observed as well as one with.
type Meter interface {
	Read(ctx context.Context, req Request) (Reading, error)
}

// Class sorts driver failures so the reconciler can decide to retry or fail, and so the class
// shows in the machine's condition reason.
type Class string

const (
	// ClassUnreachable: the BMC, machine or endpoint did not answer (network, DNS, refused).
	ClassUnreachable Class = "Unreachable"
	// ClassAuthFailed: the credentials were refused.
	ClassAuthFailed Class = "AuthFailed"
	// ClassUnsupported: the driver or the BMC cannot do this action.
	ClassUnsupported Class = "Unsupported"
	// ClassBMCError: the BMC or endpoint answered with an error.
	ClassBMCError Class = "BMCError"
	// ClassTimeout: the call did not finish within its timeout.
	ClassTimeout Class = "Timeout"
	// ClassConfig: the configuration is unusable (missing Secret or key, invalid Job spec); retrying
	// will not help until a human fixes it.
	ClassConfig Class = "ConfigError"
	// ClassFailed: the action ran and reported failure (a Job that failed).
	ClassFailed Class = "Failed"
	// ClassIncompleteConfig: the machine's effective spec (its own fields and its Group's
	// machineDefaults) names no driver for the action, or a BMC without its address or
	// credentials. No driver is called. Unlike ClassConfig, the manager notices the fix by itself:
	// a Failed machine of this class is tried again once its effective spec is complete.
	ClassIncompleteConfig Class = "IncompleteConfig"
)

// Error is a classified driver failure. Its message never contains a credential.
type Error struct {
	Driver string
	Action Action
	Class  Class
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: %s: %v", e.Driver, e.Action, e.Class, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error.
func Errorf(driver string, action Action, class Class, format string, args ...any) *Error {
	return &Error{Driver: driver, Action: action, Class: class, Err: fmt.Errorf(format, args...)}
}

// ClassOf returns the class of err: its own when it is an *Error, ClassTimeout for a deadline,
// ClassBMCError otherwise.
func ClassOf(err error) Class {
	var pe *Error
	switch {
	case errors.As(err, &pe):
		return pe.Class
	case errors.Is(err, context.DeadlineExceeded):
		return ClassTimeout
	default:
		return ClassBMCError
	}
}

// Retryable reports whether another attempt may succeed without a human changing anything.
func Retryable(err error) bool {
	switch ClassOf(err) {
	case ClassConfig, ClassIncompleteConfig, ClassUnsupported, ClassAuthFailed:
		return false
	default:
		return true
	}
}

// DefaultTimeout bounds a driver call whose slot sets no timeout.
const DefaultTimeout = infrav1.DefaultPowerTimeout
