package power

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

const (
	// redfishPollInterval spaces the PowerState reads while a graceful shutdown runs.
	redfishPollInterval = time.Second
	// redfishMaxBody bounds every response body the driver reads. A ComputerSystem is tens of
	// kilobytes and a Systems collection of thousands of members fits; a BMC that sends more is
	// broken or hostile, and must not fill the manager's memory.
	redfishMaxBody = 2 << 20
	// redfishNamedSystems is how many systems an error names.
	redfishNamedSystems = 10
	// redfishDetailSnippet is how much of a BMC's error text goes into a message.
	redfishDetailSnippet = 300
	// redfishQuoted is how much of a value a BMC sent (an Id, a PowerState) goes into a message.
	redfishQuoted = 100
)

// Redfish powers machines on and off and reads their power state through a BMC's Redfish API.
type Redfish struct {
	// Egress limits the addresses the driver connects to; nil allows every address.
	Egress *EgressPolicy
}

// Name implements Driver.
func (Redfish) Name() string { return DriverRedfish }

// Do powers the system on (ResetType On) or off. Power off asks the operating system to shut down
// (GracefulShutdown) when the BMC lists that reset type, waits up to gracefulShutdownTimeout for
// PowerState Off, and then forces the power off (ForceOff). A system already in the requested
// state is left alone. Power on is Done once the BMC accepted the request; the power state
// changes seconds later, which the caller sees through Status.
func (d Redfish) Do(ctx context.Context, req Request) (Outcome, error) {
	req, g := guard(DriverRedfish, req)
	out, err := d.do(ctx, req, g.scrubber)
	return g.outcome(out), g.err(err)
}

func (d Redfish) do(ctx context.Context, req Request, scrubber *Scrubber) (Outcome, error) {
	if req.Action != ActionOn && req.Action != ActionOff {
		return Outcome{}, Errorf(DriverRedfish, req.Action, ClassUnsupported, "Do handles on and off, not %q", req.Action)
	}
	ctx, cancel := callContext(ctx, req)
	defer cancel()
	s, err := d.connect(ctx, req, scrubber)
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
			return Outcome{}, Errorf(DriverRedfish, req.Action, ClassUnsupported, "system %s offers no reset type that powers it on (allowed: %s)", sys.ID, s.quote(allowed))
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
		return Outcome{}, Errorf(DriverRedfish, req.Action, ClassUnsupported, "system %s is still on and offers no ForceOff (allowed: %s)", sys.ID, s.quote(allowed))
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
	req, g := guard(DriverRedfish, req)
	r, err := d.read(ctx, req, g.scrubber, false)
	return r.State, g.err(err)
}

// Read is Status with the power draw of the system's chassis, read in the same session: the
// chassis (the first of the system's Links.Chassis, else the only member of the Chassis
// collection), then its Power resource (the first PowerControl with a PowerConsumedWatts) or,
// without a reading there, its EnvironmentMetrics (PowerWatts.Reading). That is two requests more
// than Status, three when Power has no reading and EnvironmentMetrics is read too, and one more
// when the chassis is found through the collection. Whatever the BMC lacks or fails to answer
// makes Watts nil.
func (d Redfish) Read(ctx context.Context, req Request) (Reading, error) {
	req.Action = ActionStatus
	req, g := guard(DriverRedfish, req)
	r, err := d.read(ctx, req, g.scrubber, true)
	return r, g.err(err)
}

func (d Redfish) read(ctx context.Context, req Request, scrubber *Scrubber, metered bool) (Reading, error) {
	unknown := Reading{State: infrav1.PowerUnknown}
	ctx, cancel := callContext(ctx, req)
	defer cancel()
	s, err := d.connect(ctx, req, scrubber)
	if err != nil {
		return unknown, err
	}
	defer s.close()
	sys, err := s.system()
	if err != nil {
		return unknown, err
	}
	var r Reading
	switch sys.PowerState {
	case schemas.OffPowerState:
		r.State = infrav1.PoweredOff
	case schemas.OnPowerState, schemas.PoweringOnPowerState, schemas.PoweringOffPowerState, schemas.PausedPowerState:
		r.State = infrav1.PoweredOn
	default:
		return unknown, Errorf(DriverRedfish, req.Action, ClassBMCError, "system %s reports PowerState %q", sys.ID, s.quote(sys.PowerState))
	}
	if metered {
		r.Watts = s.watts(ctx, sys)
	}
	return r, nil
}

// redfishSession is an authenticated client for one driver call.
type redfishSession struct {
	// ctx is the call's context; gofish holds it too and sends every request with it.
	ctx       context.Context
	client    *gofish.APIClient
	http      *http.Client
	transport *redfishTransport
	req       Request
	endpoint  *url.URL
	// systems is the URI of the Systems collection.
	systems string
	// chassis is the URI of the Chassis collection.
	chassis string
	// sessionURI is the session to delete at the end; empty with basic auth.
	sessionURI string
	// scrubber holds the call's secrets, which a BMC's error text must not repeat.
	scrubber *Scrubber
}

// redfishServiceRoot is the part of the service root the driver reads itself.
type redfishServiceRoot struct {
	Systems redfishLink `json:"Systems"`
	Chassis redfishLink `json:"Chassis"`
	Links   struct {
		Sessions redfishLink `json:"Sessions"`
	} `json:"Links"`
}

type redfishLink struct {
	ODataID string `json:"@odata.id"`
}

// connect reads the service root (public, per the Redfish specification) and logs in with a
// session (POST to the service root's Links.Sessions, answered with X-Auth-Token and Location).
// HTTP basic auth, which sends the password with every request, is used only when the Machine
// sets allowBasicAuth and the BMC has no sessions or fails to create one for a reason other
// than the credentials. Refused credentials end the attempt: BMCs lock accounts after a few
// failures. Credentials go to an http:// endpoint only when the Machine sets allowPlainHTTP.
func (d Redfish) connect(ctx context.Context, req Request, scrubber *Scrubber) (*redfishSession, error) {
	cfg := req.Slot.Redfish
	if cfg == nil {
		return nil, Errorf(DriverRedfish, req.Action, ClassConfig, "the slot has no redfish configuration")
	}
	endpoint, err := url.Parse(strings.TrimRight(cfg.Endpoint, "/"))
	if err != nil || (endpoint.Scheme != "http" && endpoint.Scheme != "https") || endpoint.Host == "" {
		return nil, Errorf(DriverRedfish, req.Action, ClassConfig, "endpoint is not an absolute http(s) URL")
	}
	if endpoint.Scheme == "http" && !cfg.AllowPlainHTTP {
		return nil, Errorf(DriverRedfish, req.Action, ClassConfig,
			"endpoint %s is plain http, where anyone on the BMC network can read the credentials: use https, or set allowPlainHTTP to send them anyway", safeURL(endpoint))
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
	hc := httpClient(tlsCfg, d.Egress)
	transport := &redfishTransport{base: hc.Transport.(*http.Transport), origin: endpoint, limit: redfishMaxBody, rootPath: endpoint.Path + "/redfish/v1"}
	hc.Transport = transport
	// gofish's own client would follow a redirect to wherever it points, with the session token
	// or the basic auth header.
	hc.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		return &redirectError{code: r.Response.StatusCode}
	}
	s := &redfishSession{ctx: ctx, http: hc, transport: transport, req: req, endpoint: endpoint, scrubber: scrubber}
	base := gofish.ClientConfig{
		Endpoint:   endpoint.String(),
		HTTPClient: hc,
		// The transport is built here, TLS settings included; gofish must not change it.
		NoModifyTransport: true,
		ReuseConnections:  true,
		Username:          user,
		Password:          pass,
	}

	// gofish reads the service root, then logs in at its Links.Sessions; without that link it
	// fails before sending anything.
	client, err := gofish.ConnectContext(ctx, base)
	root, rootRead := transport.serviceRoot()
	s.systems = root.Systems.ODataID
	if s.systems == "" {
		s.systems = "/redfish/v1/Systems"
	}
	s.chassis = root.Chassis.ODataID
	if s.chassis == "" {
		s.chassis = "/redfish/v1/Chassis"
	}
	switch {
	case err == nil:
	case rootRead && root.Links.Sessions.ODataID == "":
		// Like sushy-tools and some older BMCs: no session service.
		if !cfg.AllowBasicAuth {
			hc.CloseIdleConnections()
			return nil, Errorf(DriverRedfish, req.Action, ClassConfig,
				"log in: %s offers no Redfish sessions (its service root has no Links.Sessions): set allowBasicAuth to send the credentials with every request (HTTP basic auth)", safeURL(endpoint))
		}
		return s.basicAuth(base)
	default:
		e := s.fail("log in", err)
		switch e.Class {
		case ClassAuthFailed, ClassTimeout, ClassUnreachable, ClassConfig:
			hc.CloseIdleConnections()
			return nil, e
		}
		if !cfg.AllowBasicAuth {
			hc.CloseIdleConnections()
			e.Err = fmt.Errorf("%w (with allowBasicAuth set, HTTP basic auth would be tried next)", e.Err)
			return nil, e
		}
		return s.basicAuth(base)
	}
	uri, token, located := sessionOf(client)
	switch {
	case !located:
		// A session without a Location cannot be logged out; it expires on the BMC.
		s.client = client
		return s, nil
	case token != "":
		s.client, s.sessionURI = client, uri
		scrubber.Add(token)
		return s, nil
	case !cfg.AllowBasicAuth:
		hc.CloseIdleConnections()
		return nil, Errorf(DriverRedfish, req.Action, ClassConfig,
			"log in: %s created a session without an X-Auth-Token: set allowBasicAuth to send the credentials with every request (HTTP basic auth)", safeURL(endpoint))
	}
	return s.basicAuth(base)
}

// basicAuth connects with HTTP basic auth.
func (s *redfishSession) basicAuth(base gofish.ClientConfig) (*redfishSession, error) {
	base.BasicAuth = true
	client, err := gofish.ConnectContext(s.ctx, base)
	if err != nil {
		s.http.CloseIdleConnections()
		return nil, s.fail("read the service root", err)
	}
	s.client = client
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

// get reads the body of uri, a path on the endpoint's host.
func (s *redfishSession) get(uri string) ([]byte, error) {
	resp, err := s.client.Get(uri)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	return io.ReadAll(resp.Body)
}

// system finds the ComputerSystem to power: the one whose URI ends in systemID, read directly,
// or else the only member of the Systems collection. Members are never read one by one: a
// collection may list thousands.
func (s *redfishSession) system() (*schemas.ComputerSystem, error) {
	want := s.req.Slot.Redfish.SystemID
	if want == "" {
		members, total, err := s.listSystems()
		if err != nil {
			return nil, err
		}
		switch {
		case total == 0 || len(members) == 0:
			return nil, Errorf(DriverRedfish, s.req.Action, ClassBMCError, "%s lists no systems", safeURL(s.endpoint))
		case total > 1:
			return nil, Errorf(DriverRedfish, s.req.Action, ClassConfig, "%s manages %d systems (%s): set systemID to the one to power", safeURL(s.endpoint), total, systemNames(members, total))
		}
		if !strings.HasPrefix(members[0], "/") {
			return nil, Errorf(DriverRedfish, s.req.Action, ClassBMCError, "%s lists a system whose URI is not a path on the BMC", safeURL(s.endpoint))
		}
		sys, err := schemas.GetObject[schemas.ComputerSystem](s.client, members[0])
		if err != nil {
			return nil, s.fail("read the system", err)
		}
		return s.named(sys), nil
	}
	sys, err := schemas.GetObject[schemas.ComputerSystem](s.client, strings.TrimRight(s.systems, "/")+"/"+url.PathEscape(want))
	if err == nil {
		return s.named(sys), nil
	}
	var rfErr *schemas.Error
	if errors.As(err, &rfErr) && (rfErr.HTTPReturnedStatusCode == http.StatusNotFound || rfErr.HTTPReturnedStatusCode == http.StatusBadRequest) {
		msg := fmt.Sprintf("%s has no system %q", safeURL(s.endpoint), want)
		if members, total, err := s.listSystems(); err == nil {
			msg += fmt.Sprintf(" (it has %d: %s)", total, systemNames(members, total))
		}
		return nil, Errorf(DriverRedfish, s.req.Action, ClassConfig, "%s", msg)
	}
	return nil, s.fail(fmt.Sprintf("read system %q", want), err)
}

// quote is what a BMC said, for a message: short, printable, without a secret.
func (s *redfishSession) quote(v any) string {
	return snippet([]byte(fmt.Sprint(v)), s.scrubber, redfishQuoted)
}

// named returns sys with its Id, which only names it in messages, made fit for them.
func (s *redfishSession) named(sys *schemas.ComputerSystem) *schemas.ComputerSystem {
	sys.ID = s.quote(sys.ID)
	return sys
}

// listSystems reads the Systems collection: its member URIs and how many systems it counts.
func (s *redfishSession) listSystems() ([]string, int, error) {
	body, err := s.get(s.systems)
	if err != nil {
		return nil, 0, s.fail("list the systems", err)
	}
	members, total, err := parseSystemsCollection(body)
	if err != nil {
		return nil, 0, Errorf(DriverRedfish, s.req.Action, ClassBMCError, "list the systems: %s%s: %v", safeURL(s.endpoint), s.systems, err)
	}
	return members, total, nil
}

// parseSystemsCollection reads a Systems collection: its member URIs, and how many systems it
// counts, which is more than it lists when Members@odata.count says so or when a next page
// follows.
func parseSystemsCollection(body []byte) ([]string, int, error) {
	var c struct {
		Members []redfishLink `json:"Members"`
		Count   json.Number   `json:"Members@odata.count"`
		Next    string        `json:"Members@odata.nextLink"`
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, 0, errors.New("the body is not a Redfish collection")
	}
	members := make([]string, len(c.Members))
	for i, m := range c.Members {
		members[i] = m.ODataID
	}
	total := len(members)
	if n, err := c.Count.Int64(); err == nil && n > int64(total) {
		total = int(min(n, int64(1<<31-1)))
	}
	if c.Next != "" && total == len(members) {
		total++
	}
	return members, total, nil
}

// systemNames names the first systems of a collection, in the BMC's order, by the last segment
// of their URIs.
func systemNames(members []string, total int) string {
	var names []string
	for _, m := range members[:min(len(members), redfishNamedSystems)] {
		names = append(names, path.Base(strings.TrimRight(m, "/")))
	}
	out := strings.Join(names, ", ")
	if total > len(names) {
		out += ", ..."
	}
	return out
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
	action := s.req.Action
	var redirect *redirectError
	if errors.As(err, &redirect) {
		return Errorf(DriverRedfish, action, ClassConfig, "%s: %s answered %d, a redirect, which the driver does not follow: set endpoint to the URL the BMC serves Redfish on",
			what, safeURL(s.endpoint), redirect.code)
	}
	if errors.Is(err, errOtherHost) || strings.Contains(err.Error(), errOtherHost.Error()) {
		return Errorf(DriverRedfish, action, ClassBMCError, "%s: %s sent a link to another host, which the driver does not follow", what, safeURL(s.endpoint))
	}
	if uri, ok := s.transport.oversized(); ok && strings.Contains(err.Error(), errBodyTooLarge.Error()) {
		return Errorf(DriverRedfish, action, ClassBMCError, "%s: %s%s answered more than %d bytes, which the driver does not read", what, safeURL(s.endpoint), uri, redfishMaxBody)
	}
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
		if detail := snippet([]byte(redfishErrorDetail(rfErr)), s.scrubber, redfishDetailSnippet); detail != "" {
			msg += ": " + detail
		}
		return Errorf(DriverRedfish, action, class, "%s", msg)
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) || classify(s.ctx, err) != ClassBMCError {
		e := transportError(s.ctx, DriverRedfish, action, s.endpoint, err)
		e.Err = fmt.Errorf("%s: %w", what, e.Err)
		return e
	}
	return Errorf(DriverRedfish, action, ClassBMCError, "%s: %s: %s", what, safeURL(s.endpoint), snippet([]byte(err.Error()), s.scrubber, redfishDetailSnippet))
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

// Failures of the Redfish transport, recognised again in the text gofish makes of them.
var (
	errBodyTooLarge = errors.New("redfish response body over the size limit")
	errOtherHost    = errors.New("redfish request to a host other than the endpoint's")
)

// redirectError is a redirect the driver refused to follow.
type redirectError struct{ code int }

func (e *redirectError) Error() string { return fmt.Sprintf("redirect (%d) not followed", e.code) }

// redfishTransport sends the requests of one Redfish call. It sends nothing to a scheme and host
// other than the endpoint's, whatever link a BMC's answer holds, and it fails a response body
// larger than limit instead of reading it.
type redfishTransport struct {
	base   *http.Transport
	origin *url.URL
	limit  int64
	// rootPath is the service root's path. The first answer to it is kept: gofish reads it, but
	// does not show the links the driver needs (Links.Sessions, Systems), and reading it again
	// would cost a request.
	rootPath string

	mu sync.Mutex
	// over is the path of the first response that was too large.
	over *string
	// root is the body of the first successful answer to rootPath, while it is read.
	root     bytes.Buffer
	rootSeen bool
}

// RoundTrip implements http.RoundTripper.
func (t *redfishTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != t.origin.Scheme || r.URL.Host != t.origin.Host {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, errOtherHost
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.limit {
		_ = resp.Body.Close()
		t.exceeded(r.URL.Path)
		return nil, errBodyTooLarge
	}
	capped := &cappedBody{body: resp.Body, left: t.limit, exceeded: func() { t.exceeded(r.URL.Path) }}
	resp.Body = capped
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.rootSeen && r.Method == http.MethodGet && strings.TrimSuffix(r.URL.Path, "/") == t.rootPath && resp.StatusCode == http.StatusOK {
		t.rootSeen = true
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.TeeReader(capped, lockedWriter{mu: &t.mu, w: &t.root}), capped}
	}
	return resp, nil
}

// serviceRoot returns the links of the service root; read is false when no answer to it was
// read whole as JSON.
func (t *redfishTransport) serviceRoot() (root redfishServiceRoot, read bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.rootSeen {
		return root, false
	}
	// The first JSON value only: whatever follows it was not read by gofish either.
	err := json.NewDecoder(bytes.NewReader(t.root.Bytes())).Decode(&root)
	return root, err == nil
}

// lockedWriter writes to w under mu.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the transport.
func (t *redfishTransport) CloseIdleConnections() { t.base.CloseIdleConnections() }

func (t *redfishTransport) exceeded(path string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.over == nil {
		t.over = &path
	}
}

// oversized returns the path of the first response body that was over the limit.
func (t *redfishTransport) oversized() (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.over == nil {
		return "", false
	}
	return *t.over, true
}

// cappedBody reads a response body up to left bytes, and fails if there is more.
type cappedBody struct {
	body     io.ReadCloser
	left     int64
	exceeded func()
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, err := b.body.Read(one[:]); n == 0 {
			return 0, err
		}
		b.exceeded()
		return 0, errBodyTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.body.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.body.Close() }
