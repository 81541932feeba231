package power

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

const (
	// sshOutputLimit bounds how much of the command's output is kept for messages.
	sshOutputLimit = 4096
)

// SSH powers machines off by running a command over SSH. The machine's host key must be pinned
// in the Machine's spec; a machine presenting any other key, or a key marked @revoked, is refused
// before anything is sent.
type SSH struct {
	// Egress limits the addresses the driver connects to; nil allows every address.
	Egress *EgressPolicy
}

// Name implements Driver.
func (SSH) Name() string { return DriverSSH }

// Do runs the power-off command. It is Done when the command exits 0, and also when the
// connection ends without an exit status (or the command is killed by a signal) after the
// command started: a machine that powers off drops its SSH connections, and that is success.
func (d SSH) Do(ctx context.Context, req Request) (Outcome, error) {
	req, g := guard(DriverSSH, req)
	out, err := d.do(ctx, req)
	return g.outcome(out), g.err(err)
}

func (d SSH) do(ctx context.Context, req Request) (Outcome, error) {
	if req.Action != ActionOff {
		return Outcome{}, Errorf(DriverSSH, req.Action, ClassUnsupported, "ssh can only power a machine off")
	}
	cfg := req.Slot.SSH
	if cfg == nil {
		return Outcome{}, Errorf(DriverSSH, req.Action, ClassConfig, "the slot has no ssh configuration")
	}
	ctx, cancel := callContext(ctx, req)
	defer cancel()

	keyName := cfg.KeySecretRef.Key
	if keyName == "" {
		keyName = infrav1.DefaultSSHKeySecretKey
	}
	keyPEM, err := secretValue(ctx, DriverSSH, req, cfg.KeySecretRef.Name, keyName)
	if err != nil {
		return Outcome{}, err
	}
	signer, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		reason := "it is not a PEM or OpenSSH private key"
		if errors.As(err, &missing) {
			reason = "it is encrypted with a passphrase, which the driver cannot enter"
		}
		return Outcome{}, Errorf(DriverSSH, req.Action, ClassConfig, "secret %s/%s key %q: %s", req.namespace(), cfg.KeySecretRef.Name, keyName, reason)
	}
	pinned, revoked, err := d.pinnedHostKeys(ctx, req)
	if err != nil {
		return Outcome{}, err
	}

	port := int(cfg.Port)
	if port == 0 {
		port = int(infrav1.DefaultSSHPort)
	}
	addr := net.JoinHostPort(cfg.Address, strconv.Itoa(port))
	command := cfg.Command
	if command == "" {
		command = infrav1.DefaultSSHCommand
	}

	// The callback runs on the handshake's goroutine; the mismatch it finds is read after
	// NewClientConn returns.
	var hostKeyMu sync.Mutex
	var hostKeyErr error
	config := &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyAlgorithms: hostKeyAlgorithms(pinned),
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			hostKeyMu.Lock()
			defer hostKeyMu.Unlock()
			switch {
			case containsKey(revoked, key):
				hostKeyErr = fmt.Errorf("%s presented host key %s %s, which is marked @revoked: refusing to connect",
					addr, key.Type(), ssh.FingerprintSHA256(key))
			case containsKey(pinned, key):
				return nil
			default:
				hostKeyErr = fmt.Errorf("%s presented host key %s %s, which is not the pinned host key: refusing to connect (a reinstalled machine needs its new key pinned; otherwise something is in between)",
					addr, key.Type(), ssh.FingerprintSHA256(key))
			}
			return hostKeyErr
		},
	}

	conn, err := d.Egress.dialer().DialContext(ctx, "tcp", addr)
	if err != nil {
		return Outcome{}, sshNetError(ctx, req.Action, addr, "connect", err)
	}
	// The SSH library reads and writes without a context: closing the connection when the call's
	// context ends is what bounds the handshake and the command.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer func() { _ = conn.Close() }()

	clientConn, chans, reqs, err := ssh.NewClientConn(conn, addr, config)
	if err != nil {
		hostKeyMu.Lock()
		defer hostKeyMu.Unlock()
		switch {
		case hostKeyErr != nil:
			return Outcome{}, &Error{Driver: DriverSSH, Action: req.Action, Class: ClassConfig, Err: hostKeyErr}
		case ctx.Err() != nil:
			return Outcome{}, Errorf(DriverSSH, req.Action, ClassTimeout, "%s: no SSH session within the timeout", addr)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return Outcome{}, Errorf(DriverSSH, req.Action, ClassAuthFailed, "%s refused the key of user %q", addr, cfg.User)
		}
		return Outcome{}, sshNetError(ctx, req.Action, addr, "handshake", err)
	}
	client := ssh.NewClient(clientConn, chans, reqs)
	defer func() { _ = client.Close() }()

	session, err := client.NewSession()
	if err != nil {
		return Outcome{}, sshNetError(ctx, req.Action, addr, "open session", err)
	}
	defer func() { _ = session.Close() }()
	output := &tailBuffer{limit: sshOutputLimit}
	session.Stdout, session.Stderr = output, output
	if err := session.Start(command); err != nil {
		return Outcome{}, sshNetError(ctx, req.Action, addr, "start the command", err)
	}

	err = session.Wait()
	var exitErr *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return Outcome{Done: true, Detail: fmt.Sprintf("%s: command exited 0", addr)}, nil
	case errors.As(err, &exitErr) && exitErr.Signal() != "":
		return Outcome{Done: true, Detail: fmt.Sprintf("%s: command ended by signal %s (the machine is shutting down)", addr, exitErr.Signal())}, nil
	case errors.As(err, &exitErr):
		msg := fmt.Sprintf("%s: command exited with status %d", addr, exitErr.ExitStatus())
		if out := output.String(); out != "" {
			msg += ": " + out
		}
		return Outcome{}, Errorf(DriverSSH, req.Action, ClassFailed, "%s", msg)
	case ctx.Err() != nil:
		// The command started and the machine went quiet: a machine that loses power mid-way
		// never closes the connection. Whether it is off shows in its power status.
		return Outcome{Done: true, Detail: fmt.Sprintf("%s: command started; no exit status before the timeout", addr)}, nil
	case errors.As(err, &missing), errors.Is(err, io.EOF), isConnDrop(err):
		return Outcome{Done: true, Detail: fmt.Sprintf("%s: command started; the machine closed the connection", addr)}, nil
	}
	return Outcome{}, sshNetError(ctx, req.Action, addr, "run the command", err)
}

// Status implements Driver: the SSH driver cannot read a power state.
func (SSH) Status(context.Context, Request) (infrav1.PowerState, error) {
	return infrav1.PowerUnknown, Errorf(DriverSSH, ActionStatus, ClassUnsupported, "ssh cannot read the power state")
}

// pinnedHostKeys reads hostKey or the hostKeySecretRef's value (parseHostKeys says how). It
// returns the keys to accept and the keys to refuse.
func (SSH) pinnedHostKeys(ctx context.Context, req Request) (pinned, revoked []ssh.PublicKey, err error) {
	cfg := req.Slot.SSH
	text := []byte(cfg.HostKey)
	source := "hostKey"
	if ref := cfg.HostKeySecretRef; ref != nil {
		v, err := publicSecretValue(ctx, DriverSSH, req, ref.Name, ref.Key)
		if err != nil {
			return nil, nil, err
		}
		text, source = v, fmt.Sprintf("secret %s/%s key %q", req.namespace(), ref.Name, ref.Key)
	}
	pinned, revoked, err = parseHostKeys(text)
	if err != nil {
		return nil, nil, Errorf(DriverSSH, req.Action, ClassConfig, "%s: %v", source, err)
	}
	return pinned, revoked, nil
}

// Host key refusals. None of them repeats any part of the text: a Secret that was meant to
// hold a host key may hold a password instead.
var (
	errNoHostKey      = errors.New("no host key pinned: set hostKey or hostKeySecretRef (the machine's host key is never trusted on first use)")
	errAllKeysRevoked = errors.New("every host key given is marked @revoked: pin the machine's current host key")
)

// parseHostKeys reads pinned host keys: one per line, in authorized_keys format ("ssh-ed25519
// AAAA...") or as known_hosts and ssh-keyscan print them (host patterns first, which are not
// checked: the keys are pinned for this one machine). Empty lines and # comments are skipped. A
// known_hosts line marked @revoked names a key that is refused even where another line pins
// it. @cert-authority lines are refused: the driver does not check host certificates, and
// accepting a CA's key as if it were the host's would be wrong either way.
func parseHostKeys(text []byte) (pinned, revoked []ssh.PublicKey, err error) {
	for i, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		isRevoked := false
		if strings.HasPrefix(line, "@") {
			marker, rest := line, ""
			if end := strings.IndexAny(line, " \t"); end >= 0 {
				marker, rest = line[:end], line[end:]
			}
			switch marker {
			case "@revoked":
				isRevoked = true
			case "@cert-authority":
				return nil, nil, fmt.Errorf("line %d is a @cert-authority line: host certificates are not supported, pin the machine's host key itself", i+1)
			default:
				return nil, nil, fmt.Errorf("line %d starts with a marker other than @revoked or @cert-authority", i+1)
			}
			line = strings.TrimSpace(rest)
		}
		key, ok := parseHostKeyLine(line)
		if !ok {
			return nil, nil, fmt.Errorf("line %d is not a public key in authorized_keys or known_hosts format", i+1)
		}
		if isRevoked {
			revoked = append(revoked, key)
		} else {
			pinned = append(pinned, key)
		}
	}
	pinned = slices.DeleteFunc(pinned, func(k ssh.PublicKey) bool { return containsKey(revoked, k) })
	switch {
	case len(pinned) > 0:
		return pinned, revoked, nil
	case len(revoked) > 0:
		return nil, nil, errAllKeysRevoked
	}
	return nil, nil, errNoHostKey
}

// parseHostKeyLine reads one key without a marker: in authorized_keys format, or after host
// patterns as in known_hosts.
func parseHostKeyLine(line string) (ssh.PublicKey, bool) {
	if strings.HasPrefix(line, "@") {
		return nil, false
	}
	if key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err == nil {
		return key, true
	}
	if marker, _, key, _, _, err := ssh.ParseKnownHosts([]byte(line)); err == nil && marker == "" {
		return key, true
	}
	return nil, false
}

func containsKey(keys []ssh.PublicKey, key ssh.PublicKey) bool {
	want := key.Marshal()
	return slices.ContainsFunc(keys, func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), want) })
}

// hostKeyAlgorithms asks the server for exactly the kinds of key that are pinned: a server that
// holds several host keys would otherwise present the one the client happens to prefer.
func hostKeyAlgorithms(keys []ssh.PublicKey) []string {
	var algs []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algs = append(algs, a)
		}
	}
	for _, k := range keys {
		if k.Type() == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
		}
		add(k.Type())
	}
	return algs
}

func sshNetError(ctx context.Context, action Action, addr, what string, err error) *Error {
	class := classify(ctx, err)
	if class == ClassTimeout {
		return Errorf(DriverSSH, action, class, "%s: %s: no answer within the timeout", addr, what)
	}
	if class == ClassBMCError && (errors.Is(err, io.EOF) || isConnDrop(err)) {
		class = ClassUnreachable
	}
	return Errorf(DriverSSH, action, class, "%s: %s: %v", addr, what, err)
}

func isConnDrop(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) || errors.Is(err, net.ErrClosed)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// tailBuffer keeps the last limit bytes written to it: the end of a command's output says why it
// failed.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.limit; over > 0 {
		b.buf = b.buf[over:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(strings.Fields(strings.ToValidUTF8(string(b.buf), "")), " ")
}
