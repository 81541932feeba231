package power

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

const (
	// httpMaxBody bounds how much of a response is read: enough for any status page.
	httpMaxBody = 1 << 20
	// httpErrorSnippet is how much of an error response goes into the error message.
	httpErrorSnippet = 200
	// httpLocationSnippet is how much of a redirect's target goes into the error message.
	httpLocationSnippet = 120
)

// HTTP powers machines on and off with one HTTP request per action: a smart plug's relay, a
// Home Assistant service call, a hypervisor's API. For status, the response body is matched
// against poweredOnPattern, and the power draw is read from it (or from a second request) where
// the slot's watts says.
type HTTP struct {
	// Egress limits the addresses the driver connects to; nil allows every address.
	Egress *EgressPolicy
}

// Name implements Driver.
func (HTTP) Name() string { return DriverHTTP }

// Do sends the configured request. It is Done when the answer's status code is a success code.
func (d HTTP) Do(ctx context.Context, req Request) (Outcome, error) {
	req, g := guard(DriverHTTP, req)
	out, err := d.do(ctx, req, g.scrubber)
	return g.outcome(out), g.err(err)
}

func (d HTTP) do(ctx context.Context, req Request, scrubber *Scrubber) (Outcome, error) {
	if req.Action != ActionOn && req.Action != ActionOff {
		return Outcome{}, Errorf(DriverHTTP, req.Action, ClassUnsupported, "Do handles on and off, not %q", req.Action)
	}
	ctx, cancel := callContext(ctx, req)
	defer cancel()
	c, err := d.prepare(ctx, req, scrubber)
	if err != nil {
		return Outcome{}, err
	}
	defer c.close()
	code, _, err := c.send(ctx)
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{Done: true, Detail: fmt.Sprintf("answered %d", code)}, nil
}

// Status sends the configured request and reports on when the response body matches
// poweredOnPattern, off when it does not.
func (d HTTP) Status(ctx context.Context, req Request) (infrav1.PowerState, error) {
	req.Action = ActionStatus
	req, g := guard(DriverHTTP, req)
	r, err := d.read(ctx, req, g.scrubber, false)
	return r.State, g.err(err)
}

// Read is Status with the power draw, when the slot's watts says where to find it: in the status
// response itself (one request, as Status), or in the answer to a GET of watts.url sent after it
// on the same connection where the host is the same (two requests). A draw that cannot be read
// (the second request fails, the field is missing, the value is no number, negative, NaN or
// infinite) is nil, and the state stands.
func (d HTTP) Read(ctx context.Context, req Request) (Reading, error) {
	req.Action = ActionStatus
	req, g := guard(DriverHTTP, req)
	r, err := d.read(ctx, req, g.scrubber, true)
	return r, g.err(err)
}

func (d HTTP) read(ctx context.Context, req Request, scrubber *Scrubber, metered bool) (Reading, error) {
	unknown := Reading{State: infrav1.PowerUnknown}
	cfg := req.Slot.HTTP
	if cfg == nil {
		return unknown, Errorf(DriverHTTP, req.Action, ClassConfig, "the slot has no http configuration")
	}
	if cfg.PoweredOnPattern == "" {
		return unknown, Errorf(DriverHTTP, req.Action, ClassUnsupported, "reading the power state over http needs a poweredOnPattern")
	}
	pattern, err := regexp.Compile(cfg.PoweredOnPattern)
	if err != nil {
		return unknown, Errorf(DriverHTTP, req.Action, ClassConfig, "poweredOnPattern does not compile: %v", err)
	}
	ctx, cancel := callContext(ctx, req)
	defer cancel()
	c, err := d.prepare(ctx, req, scrubber)
	if err != nil {
		return unknown, err
	}
	defer c.close()
	_, body, err := c.send(ctx)
	if err != nil {
		return unknown, err
	}
	r := Reading{State: infrav1.PoweredOff}
	if pattern.Match(body) {
		r.State = infrav1.PoweredOn
	}
	if metered && cfg.Watts != nil {
		r.Watts = c.watts(ctx, cfg.Watts, body)
	}
	return r, nil
}

// httpCall is the client, headers and target of one driver call, which may send two requests
// (the status and the power draw).
type httpCall struct {
	cfg      *infrav1.HTTPDriver
	action   Action
	target   *url.URL
	method   string
	headers  http.Header
	body     []byte
	client   *http.Client
	scrubber *Scrubber
}

// prepare checks the slot, reads the headers Secret and builds the client. scrubber holds the
// values read from the Secrets, which an error response must not repeat.
func (d HTTP) prepare(ctx context.Context, req Request, scrubber *Scrubber) (*httpCall, error) {
	cfg := req.Slot.HTTP
	if cfg == nil {
		return nil, Errorf(DriverHTTP, req.Action, ClassConfig, "the slot has no http configuration")
	}
	target, err := url.Parse(cfg.URL)
	if err != nil || !isAbsoluteHTTP(target) {
		return nil, Errorf(DriverHTTP, req.Action, ClassConfig, "url is not an absolute http(s) URL")
	}
	c := &httpCall{cfg: cfg, action: req.Action, target: target, method: cfg.Method, headers: http.Header{}, scrubber: scrubber}
	if c.method == "" {
		c.method = http.MethodPost
	}
	if ref := cfg.HeadersSecretRef; ref != nil {
		if req.Secrets == nil {
			return nil, Errorf(DriverHTTP, req.Action, ClassConfig, "no Secret reader to read secret %s/%s", req.namespace(), ref.Name)
		}
		data, err := req.Secrets.SecretData(ctx, req.namespace(), ref.Name)
		if err != nil {
			return nil, attribute(ctx, DriverHTTP, req.Action, err)
		}
		for name, raw := range data {
			// A value written with echo ends in a newline, which is never part of a header.
			value := strings.TrimRight(string(raw), "\r\n")
			if !httpguts.ValidHeaderFieldName(name) {
				return nil, Errorf(DriverHTTP, req.Action, ClassConfig, "secret %s/%s: key %q is not a valid header name", req.namespace(), ref.Name, name)
			}
			if !httpguts.ValidHeaderFieldValue(value) {
				return nil, Errorf(DriverHTTP, req.Action, ClassConfig, "secret %s/%s: the value of key %q is not a valid header value", req.namespace(), ref.Name, name)
			}
			c.headers.Set(name, value)
		}
	}

	var body []byte
	switch {
	case cfg.Body != "" && cfg.BodySecretRef != nil:
		return nil, Errorf(DriverHTTP, req.Action, ClassConfig, "set body or bodySecretRef, not both")
	case cfg.BodySecretRef != nil:
		body, err = secretValue(ctx, DriverHTTP, req, cfg.BodySecretRef.Name, cfg.BodySecretRef.Key)
		if err != nil {
			return nil, err
		}
	case cfg.Body != "":
		body = []byte(cfg.Body)
	}
	c.body = body

	tlsCfg, err := tlsConfig(ctx, DriverHTTP, req, cfg.CABundleRef, cfg.InsecureSkipVerify)
	if err != nil {
		return nil, err
	}
	c.client = httpClient(tlsCfg, d.Egress)
	// Redirects are not followed: net/http would carry custom token headers to whatever host a
	// redirect names. A redirect is reported instead, so the URL can be fixed.
	c.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c, nil
}

// close lets the call's connections go.
func (c *httpCall) close() { c.client.CloseIdleConnections() }

// send sends the configured request and checks the status code. It returns the body read.
func (c *httpCall) send(ctx context.Context) (int, []byte, error) {
	headers := c.headers.Clone()
	if len(c.body) > 0 && headers.Get("Content-Type") == "" && json.Valid(c.body) {
		// Home Assistant and most device APIs insist on it; a form body needs the header set in
		// the headers Secret.
		headers.Set("Content-Type", "application/json")
	}
	httpReq, err := http.NewRequestWithContext(ctx, c.method, c.target.String(), bytes.NewReader(c.body))
	if err != nil {
		return 0, nil, Errorf(DriverHTTP, c.action, ClassConfig, "build %s request: invalid method or URL", c.method)
	}
	httpReq.Header = headers
	resp, err := c.client.Do(httpReq)
	if err != nil {
		return 0, nil, transportError(ctx, DriverHTTP, c.action, c.target, err)
	}
	defer func() { _ = resp.Body.Close() }()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, httpMaxBody))
	if err != nil {
		return 0, nil, transportError(ctx, DriverHTTP, c.action, c.target, err)
	}

	if isHTTPSuccess(resp.StatusCode, c.cfg.SuccessCodes) {
		return resp.StatusCode, respBody, nil
	}
	class := ClassBMCError
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		class = ClassAuthFailed
	}
	// The status line's reason phrase is the server's own text: only the code is repeated.
	msg := fmt.Sprintf("%s %s answered %d %s", c.method, safeURL(c.target), resp.StatusCode, http.StatusText(resp.StatusCode))
	if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
		if u, err := c.target.Parse(loc); err == nil {
			msg += fmt.Sprintf(" (a redirect to %s, which is not followed: put the final URL in the spec)", snippet([]byte(safeURL(u)), c.scrubber, httpLocationSnippet))
		}
	}
	if s := snippet(respBody, c.scrubber, httpErrorSnippet); s != "" {
		msg += ": " + s
	}
	return 0, nil, Errorf(DriverHTTP, c.action, class, "%s", msg)
}

// watts reads the draw from the status response, or from a GET of w.URL with the call's headers,
// TLS settings and egress policy. Whatever goes wrong makes it nil: the state was read, and a
// draw is an extra.
func (c *httpCall) watts(ctx context.Context, w *infrav1.HTTPWatts, statusBody []byte) *float64 {
	if w.URL == "" {
		return wattsIn(w, statusBody)
	}
	target, err := url.Parse(w.URL)
	if err != nil || !isAbsoluteHTTP(target) {
		return nil
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), http.NoBody)
	if err != nil {
		return nil
	}
	httpReq.Header = c.headers.Clone()
	resp, err := c.client.Do(httpReq)
	if err != nil {
		return nil
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, httpMaxBody))
	if err != nil {
		return nil
	}
	return wattsIn(w, body)
}

func isAbsoluteHTTP(u *url.URL) bool {
	return (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func isHTTPSuccess(code int, successCodes []int32) bool {
	if len(successCodes) == 0 {
		return code >= 200 && code < 300
	}
	return slices.ContainsFunc(successCodes, func(c int32) bool { return int(c) == code })
}

// snippet is the start of a server's text for a message: printable ASCII only, each run of
// anything else (whitespace, control bytes, UTF-8) one space, at most limit bytes. The secrets
// are blanked before anything is dropped (a secret with a space or an accent in it would
// otherwise survive in pieces) and again before the text is cut (a secret cut in half would no
// longer be recognised).
func snippet(text []byte, scrubber *Scrubber, limit int) string {
	// Only the first limit bytes are kept, and a secret that starts there ends before
	// limit+longest: nothing after that needs cleaning.
	scan := limit + scrubber.longestForm() + 1
	var b strings.Builder
	space := false
	for _, c := range []byte(scrubber.String(string(text))) {
		if b.Len() >= scan {
			break
		}
		if c <= ' ' || c >= 0x7f {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteByte(c)
	}
	s := scrubber.String(b.String())
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return s
}
