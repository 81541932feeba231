package power

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"time"
)

// callContext bounds one driver call by the slot's timeout, so that no driver can hang the
// reconciler past what the Node's spec allows.
func callContext(ctx context.Context, req Request) (context.Context, context.CancelFunc) {
	timeout := req.Slot.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return context.WithTimeout(ctx, timeout)
}

// namespace is where the Node's Secrets and ConfigMaps live.
func (r Request) namespace() string {
	if r.Machine == nil {
		return ""
	}
	return r.Machine.Namespace
}

// secretValue reads one Secret key for a driver call, attributing a failure to the driver.
func secretValue(ctx context.Context, driver string, req Request, name, key string) ([]byte, error) {
	if req.Secrets == nil {
		return nil, Errorf(driver, req.Action, ClassConfig, "no Secret reader to read secret %s/%s", req.namespace(), name)
	}
	v, err := req.Secrets.SecretValue(ctx, req.namespace(), name, key)
	if err != nil {
		return nil, attribute(ctx, driver, req.Action, err)
	}
	return v, nil
}

// publicSecretValue reads a Secret key that holds public data (a CA certificate, pinned host
// keys), which the call's Scrubber does not blank: blanking them would blank key types and words
// such as "@revoked" from messages. The drivers never print what they read this way.
func publicSecretValue(ctx context.Context, driver string, req Request, name, key string) ([]byte, error) {
	if r, ok := req.Secrets.(scrubbingSecrets); ok {
		req.Secrets = r.reader
	}
	return secretValue(ctx, driver, req, name, key)
}

// credentials reads the "username" and "password" keys of a Secret.
func credentials(ctx context.Context, driver string, req Request, name string) (username, password string, err error) {
	if req.Secrets == nil {
		return "", "", Errorf(driver, req.Action, ClassConfig, "no Secret reader to read secret %s/%s", req.namespace(), name)
	}
	data, err := req.Secrets.SecretData(ctx, req.namespace(), name)
	if err != nil {
		return "", "", attribute(ctx, driver, req.Action, err)
	}
	user, okUser := data["username"]
	pass, okPass := data["password"]
	if !okUser || !okPass {
		return "", "", Errorf(driver, req.Action, ClassConfig, "secret %s/%s must have the keys \"username\" and \"password\"", req.namespace(), name)
	}
	return string(user), string(pass), nil
}

// attribute turns err into an *Error of driver and action. Readers return *Errors without a
// driver (they do not know which one asked); anything else is classified by classify.
func attribute(ctx context.Context, driver string, action Action, err error) error {
	var pe *Error
	if errors.As(err, &pe) {
		out := *pe
		out.Driver, out.Action = driver, action
		return &out
	}
	return &Error{Driver: driver, Action: action, Class: classify(ctx, err), Err: err}
}

// classify sorts a transport-level failure. The call's own deadline comes first: whatever a
// library says about a connection that was torn down because time ran out, it was a timeout.
func classify(ctx context.Context, err error) Class {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return ClassTimeout
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return ClassTimeout
	}
	if _, denied := egressRefusal(err); denied {
		// The manager's policy will refuse the address again until the spec or the policy
		// changes.
		return ClassConfig
	}
	if isTLSVerificationError(err) {
		// A certificate that does not verify will not verify on the next try either: it takes a
		// caBundleRef (or, knowingly, insecureSkipVerify).
		return ClassConfig
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &dnsErr),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EHOSTDOWN),
		errors.Is(err, syscall.ECONNRESET),
		errors.As(err, &opErr) && opErr.Op == "dial":
		return ClassUnreachable
	}
	return ClassBMCError
}

func isTLSVerificationError(err error) bool {
	var verifyErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var hostnameErr x509.HostnameError
	var invalidErr x509.CertificateInvalidError
	return errors.As(err, &verifyErr) || errors.As(err, &unknownAuthority) ||
		errors.As(err, &hostnameErr) || errors.As(err, &invalidErr)
}

// transportError describes a failed request without the URL's query and user info (which may
// hold tokens) and without Go's url.Error prefix, which repeats the whole URL.
func transportError(ctx context.Context, driver string, action Action, target *url.URL, err error) *Error {
	class := classify(ctx, err)
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	msg := err.Error()
	denied, isDenied := egressRefusal(err)
	switch {
	case class == ClassTimeout:
		msg = "no answer within the timeout"
		if ctx.Err() == nil {
			msg = err.Error()
		}
	case isDenied:
		msg = denied.Error()
	case class == ClassConfig && isTLSVerificationError(err):
		msg = fmt.Sprintf("%v (give the CA that signed it in caBundleRef)", err)
	}
	return Errorf(driver, action, class, "%s: %s", safeURL(target), msg)
}

// safeURL prints scheme, host and path only.
func safeURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// sleepCtx waits d or until ctx ends, whichever is first. It is only used for the deliberate
// spacing inside one bounded call (Wake-on-LAN resends, waiting out a graceful shutdown).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// gracefulWindow is how long a graceful shutdown may take before the power is forced off: the
// configured value, or half of the call's remaining time when unset, cut so that at least a
// quarter of the remaining time is left for the forced power-off.
func gracefulWindow(ctx context.Context, configured time.Duration) time.Duration {
	remaining := DefaultTimeout
	if deadline, ok := ctx.Deadline(); ok {
		remaining = time.Until(deadline)
	}
	window := configured
	if window <= 0 {
		window = remaining / 2
	}
	return min(window, remaining*3/4)
}
