package power

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// redfishPollInterval spaces the PowerState reads while a graceful shutdown runs.
const redfishPollInterval = time.Second

// Redfish powers machines on and off and reads their power state through a BMC's Redfish API.
type Redfish struct{}

// Name implements Driver.
func (Redfish) Name() string { return DriverRedfish }

// Do powers the system on (ResetType On) or off. Power off asks the operating system to shut down
// (GracefulShutdown) when the BMC lists that reset type, waits up to gracefulShutdownTimeout for
// PowerState Off, and then forces the power off (ForceOff). A system already in the requested
// state is left alone. Power on is Done once the BMC accepted the request; the power state
// changes seconds later, which the caller sees through Status.
func (d Redfish) Do(ctx context.Context, req Request) (Outcome, error) {
	if req.Action != ActionOn && req.Action != ActionOff {
		return Outcome{}, Errorf(DriverRedfish, req.Action, ClassUnsupported, "Do handles on and off, not %q", req.Action)
	}
	ctx, cancel := callContext(ctx, req)
	defer cancel()
	s, err := d.connect(ctx, req)
	if err != nil {
		return Outcome{}, err
	}
	defer s.close()
	sys, err := s.system()
	if err != nil {
		return Outcome{}, err
	}
	allowed, err := sys.GetSupportedResetTypes()
	if err != nil {
		return Outcome{}, s.fail("read the allowed reset types", err)
	}
	// An empty list means the BMC did not say; the reset types every BMC accepts are tried then.
	offers := func(t schemas.ResetType) bool { return len(allowed) == 0 || slices.Contains(allowed, t) }

	if req.Action == ActionOn {
		switch sys.PowerState {
		case schemas.OnPowerState, schemas.PoweringOnPowerState:
			return Outcome{Done: true, Detail: fmt.Sprintf("system %s is already %s", sys.ID, sys.PowerState)}, nil
		}
		var resetType schemas.ResetType
		for _, t := range []schemas.ResetType{schemas.OnResetType, schemas.ForceOnResetType, schemas.PushPowerButtonResetType} {
			if offers(t) {
				resetType = t
				break
			}
		}
		if resetType == "" {
			return Outcome{}, Errorf(DriverRedfish, req.Action, ClassUnsupported, "system %s offers no reset type that powers it on (allowed: %v)", sys.ID, allowed)
		}
		if err := s.reset(sys, resetType); err != nil {
			return Outcome{}, err
		}
		return Outcome{Done: true, Detail: fmt.Sprintf("system %s: ResetType %s accepted", sys.ID, resetType)}, nil
	}

	if sys.PowerState == schemas.OffPowerState {
		return Outcome{Done: true, Detail: fmt.Sprintf("system %s is already Off", sys.ID)}, nil
	}
	graceful := slices.Contains(allowed, schemas.GracefulShutdownResetType)
	if graceful || sys.PowerState == schemas.PoweringOffPowerState {
		var configured time.Duration
		if t := req.Slot.Redfish.GracefulShutdownTimeout; t != nil {
			configured = t.Duration
		}
		window := gracefulWindow(ctx, configured)
		if sys.PowerState != schemas.PoweringOffPowerState {
			if err := s.reset(sys, schemas.GracefulShutdownResetType); err != nil {
				return Outcome{}, err
			}
		}
		off, err := s.waitOff(ctx, sys, window)
		if err != nil {
			return Outcome{}, err
		}
		if off {
			return Outcome{Done: true, Detail: fmt.Sprintf("system %s shut down gracefully", sys.ID)}, nil
		}
	}
	if !offers(schemas.ForceOffResetType) {
		return Outcome{}, Errorf(DriverRedfish, req.Action, ClassUnsupported, "system %s is still on and offers no ForceOff (allowed: %v)", sys.ID, allowed)
	}
	if err := s.reset(sys, schemas.ForceOffResetType); err != nil {
		return Outcome{}, err
	}
	detail := fmt.Sprintf("system %s: ResetType ForceOff accepted", sys.ID)
	if graceful {
		detail = fmt.Sprintf("system %s: still on after the graceful shutdown window; ResetType ForceOff accepted", sys.ID)
	}
	return Outcome{Done: true, Detail: detail}, nil
}

// Status reads the system's PowerState. PoweringOn, PoweringOff and Paused count as on: the
// machine draws power until the BMC says Off.
func (d Redfish) Status(ctx context.Context, req Request) (infrav1.PowerState, error) {
	req.Action = ActionStatus
	ctx, cancel := callContext(ctx, req)
	defer cancel()
	s, err := d.connect(ctx, req)
	if err != nil {
		return infrav1.PowerUnknown, err
	}
	defer s.close()
	sys, err := s.system()
	if err != nil {
		return infrav1.PowerUnknown, err
	}
	switch sys.PowerState {
	case schemas.OffPowerState:
		return infrav1.PoweredOff, nil
	case schemas.OnPowerState, schemas.PoweringOnPowerState, schemas.PoweringOffPowerState, schemas.PausedPowerState:
		return infrav1.PoweredOn, nil
	}
	return infrav1.PowerUnknown, Errorf(DriverRedfish, req.Action, ClassBMCError, "system %s reports PowerState %q", sys.ID, sys.PowerState)
}

// redfishSession is an authenticated client for one driver call.
type redfishSession struct {
	// ctx is the call's context; gofish holds it too and sends every request with it.
	ctx      context.Context
	client   *gofish.APIClient
	http     *http.Client
	req      Request
	endpoint *url.URL
	// sessionURI is the session to delete at the end; empty with basic auth.
	sessionURI string
	// secrets are blanked out of every message.
	secrets []string
}

// connect reads the service root (public, per the Redfish specification) and logs in with a
// session (POST to the service root's Links.Sessions, answered with X-Auth-Token and Location). A
// BMC that has no session service, or fails to create a session for a reason other than the
// credentials, is used with basic auth. Refused credentials end the attempt: BMCs lock accounts
// after a few failures.
func (d Redfish) connect(ctx context.Context, req Request) (*redfishSession, error) {
	cfg := req.Slot.Redfish
	if cfg == nil {
		return nil, Errorf(DriverRedfish, req.Action, ClassConfig, "the slot has no redfish configuration")
	}
	endpoint, err := url.Parse(strings.TrimRight(cfg.Endpoint, "/"))
	if err != nil || (endpoint.Scheme != "http" && endpoint.Scheme != "https") || endpoint.Host == "" {
		return nil, Errorf(DriverRedfish, req.Action, ClassConfig, "endpoint is not an absolute http(s) URL")
	}
	if cfg.CredentialsSecretRef == nil {
		return nil, Errorf(DriverRedfish, req.Action, ClassConfig, "redfish needs credentialsSecretRef, set on the machine or in its Group's machineDefaults.bmc")
	}
	user, pass, err := credentials(ctx, DriverRedfish, req, cfg.CredentialsSecretRef.Name)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := tlsConfig(ctx, DriverRedfish, req, cfg.CABundleRef, cfg.InsecureSkipVerify)
	if err != nil {
		return nil, err
	}
	s := &redfishSession{ctx: ctx, http: httpClient(tlsCfg), req: req, endpoint: endpoint, secrets: []string{pass}}
	base := gofish.ClientConfig{
		Endpoint:   endpoint.String(),
		HTTPClient: s.http,
		// The transport is built here, TLS settings included; gofish must not change it.
		NoModifyTransport: true,
		ReuseConnections:  true,
	}

	withSession := base
	withSession.Username, withSession.Password = user, pass
	client, err := gofish.ConnectContext(ctx, withSession)
	if err == nil {
		uri, token, located := sessionOf(client)
		switch {
		case !located:
			// A session without a Location cannot be logged out; it expires on the BMC.
			s.client = client
			return s, nil
		case token != "":
			s.client, s.sessionURI = client, uri
			s.secrets = append(s.secrets, token)
			return s, nil
		}
	} else {
		// A session was refused, or the BMC has no session service (the service root names no
		// Sessions, as with sushy-tools and some older BMCs): basic auth is next, unless the
		// failure says it cannot help.
		switch e := s.fail("log in", err); e.Class {
		case ClassAuthFailed, ClassTimeout, ClassUnreachable, ClassConfig:
			s.http.CloseIdleConnections()
			return nil, e
		}
	}
	// Here the BMC created a session but sent no X-Auth-Token, or could not create one.
	withBasic := base
	withBasic.Username, withBasic.Password, withBasic.BasicAuth = user, pass, true
	if s.client, err = gofish.ConnectContext(ctx, withBasic); err != nil {
		s.http.CloseIdleConnections()
		return nil, s.fail("read the service root", err)
	}
	return s, nil
}

// sessionOf returns the URI and token of a client's session; located is false when the BMC
// answered the login without a Location.
func sessionOf(c *gofish.APIClient) (uri, token string, located bool) {
	session, err := c.GetSession()
	if err != nil {
		return "", "", false
	}
	return session.ID, session.Token, true
}

// close logs the session out while the call still has time; a session left behind expires on
// the BMC by itself.
func (s *redfishSession) close() {
	if s.sessionURI != "" && s.ctx.Err() == nil {
		_ = s.client.Service.DeleteSession(s.sessionURI)
	}
	s.http.CloseIdleConnections()
}

// system finds the ComputerSystem to power: the one named by systemID (its Id or the last
// segment of its URI), or the only one.
func (s *redfishSession) system() (*schemas.ComputerSystem, error) {
	systems, err := s.client.Service.Systems()
	if err != nil {
		return nil, s.fail("list the systems", err)
	}
	var ids []string
	for _, sys := range systems {
		ids = append(ids, sys.ID)
	}
	sort.Strings(ids)
	want := s.req.Slot.Redfish.SystemID
	if want != "" {
		for _, sys := range systems {
			if sys.ID == want || path.Base(strings.TrimRight(sys.ODataID, "/")) == want {
				return sys, nil
			}
		}
		return nil, Errorf(DriverRedfish, s.req.Action, ClassConfig, "%s has no system %q (it has: %s)", safeURL(s.endpoint), want, strings.Join(ids, ", "))
	}
	switch len(systems) {
	case 0:
		return nil, Errorf(DriverRedfish, s.req.Action, ClassBMCError, "%s lists no systems", safeURL(s.endpoint))
	case 1:
		return systems[0], nil
	}
	return nil, Errorf(DriverRedfish, s.req.Action, ClassConfig, "%s manages %d systems (%s): set systemID", safeURL(s.endpoint), len(systems), strings.Join(ids, ", "))
}

func (s *redfishSession) reset(sys *schemas.ComputerSystem, t schemas.ResetType) error {
	if _, err := sys.Reset(t); err != nil {
		return s.fail(fmt.Sprintf("system %s: ResetType %s", sys.ID, t), err)
	}
	return nil
}

// waitOff reads the system's PowerState until it is Off or window ends. A failed read while the
// machine shuts down is not an error yet: some BMCs are busy then.
func (s *redfishSession) waitOff(ctx context.Context, sys *schemas.ComputerSystem, window time.Duration) (bool, error) {
	waitCtx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	for {
		if err := sleepCtx(waitCtx, redfishPollInterval); err != nil {
			if ctx.Err() != nil {
				return false, Errorf(DriverRedfish, s.req.Action, ClassTimeout, "system %s was still shutting down when the timeout ran out", sys.ID)
			}
			return false, nil
		}
		fresh, err := schemas.GetObject[schemas.ComputerSystem](s.client, sys.ODataID)
		if err == nil && fresh.PowerState == schemas.OffPowerState {
			return true, nil
		}
	}
}

// fail classifies a gofish error: HTTP answers by status code, transport failures by cause.
func (s *redfishSession) fail(what string, err error) *Error {
	var collection *schemas.CollectionError
	if errors.As(err, &collection) {
		for _, e := range collection.Failures {
			return s.fail(what, e)
		}
	}
	action := s.req.Action
	var rfErr *schemas.Error
	if errors.As(err, &rfErr) && rfErr.HTTPReturnedStatusCode != 0 {
		code := rfErr.HTTPReturnedStatusCode
		class := ClassBMCError
		switch code {
		case http.StatusUnauthorized, http.StatusForbidden:
			class = ClassAuthFailed
		case http.StatusMethodNotAllowed, http.StatusNotImplemented:
			class = ClassUnsupported
		}
		msg := fmt.Sprintf("%s: %s answered %d %s", what, safeURL(s.endpoint), code, http.StatusText(code))
		if detail := redfishErrorDetail(rfErr); detail != "" {
			msg += ": " + scrub([]byte(detail), s.secrets)
		}
		return Errorf(DriverRedfish, action, class, "%s", msg)
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) || classify(s.ctx, err) != ClassBMCError {
		e := transportError(s.ctx, DriverRedfish, action, s.endpoint, err)
		e.Err = fmt.Errorf("%s: %w", what, e.Err)
		return e
	}
	return Errorf(DriverRedfish, action, ClassBMCError, "%s: %s: %s", what, safeURL(s.endpoint), scrub([]byte(err.Error()), s.secrets))
}

// redfishErrorDetail is the message of a Redfish error body, or the start of a body that is not
// one.
func redfishErrorDetail(e *schemas.Error) string {
	parts := []string{}
	if e.Code != "" {
		parts = append(parts, e.Code)
	}
	if e.Message != "" {
		parts = append(parts, e.Message)
	}
	for _, info := range e.ExtendedInfos {
		if info.Message != "" && info.Message != e.Message {
			parts = append(parts, info.Message)
			break
		}
	}
	if len(parts) == 0 {
		return strings.TrimPrefix(e.Error(), fmt.Sprintf("%d: ", e.HTTPReturnedStatusCode))
	}
	return strings.Join(parts, ": ")
}
