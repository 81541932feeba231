package power

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testpeers"
)

// sshd is Debian's OpenSSH server on a loopback port with its own configuration, host key and
// authorized_keys. The authorized key carries a forced command that records the command the
// client asked for instead of running it: nothing is ever powered off.
type sshd struct {
	port         int
	dir          string
	user         string
	hostKey      string // authorized_keys line of the host key
	clientKeyPEM []byte
	received     string
}

// sshRecordScript is the forced command. It appends the requested command to "received" and
// acts on it: "fail..." exits 3 with a message, "leak..." exits 3 printing the file "leak" next
// to the script (a script that prints what it should not), "drop..." kills its sshd session so
// the connection drops without an exit status (what a machine powering off does), "hang..."
// never answers within the tests' timeouts.
const sshRecordScript = `#!/bin/sh
echo "$SSH_ORIGINAL_COMMAND" >> %q
case "$SSH_ORIGINAL_COMMAND" in
  fail*) echo "sudo: a password is required" >&2; exit 3;;
  leak*) cat "$(dirname "$0")/leak" >&2; exit 3;;
  drop*) kill -9 $PPID; exit 0;;
  hang*) sleep 5;;
esac
echo "ok: $SSH_ORIGINAL_COMMAND"
`

func newSSHKey(t testing.TB) (ssh.Signer, []byte, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, pem.EncodeToMemory(block), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
}

func startSSHD(t *testing.T) *sshd {
	t.Helper()
	bin := "/usr/sbin/sshd"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is not installed: the SSH driver tests run it as a real peer. Run hack/install-test-deps.sh (make test-deps) first", bin)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// sshd started as root insists on its privilege-separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &sshd{dir: t.TempDir(), user: me.Username}
	s.received = filepath.Join(s.dir, "received")
	_, hostPEM, hostPub := newSSHKey(t)
	s.hostKey = hostPub
	_, clientPEM, clientPub := newSSHKey(t)
	s.clientKeyPEM = clientPEM
	writeFile(t, filepath.Join(s.dir, "host_ed25519"), string(hostPEM), 0o600)
	writeFile(t, filepath.Join(s.dir, "record.sh"), fmt.Sprintf(sshRecordScript, s.received), 0o755)
	writeFile(t, filepath.Join(s.dir, "authorized_keys"), fmt.Sprintf(
		"command=%q,no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding %s\n", filepath.Join(s.dir, "record.sh"), clientPub), 0o600)

	for range 3 {
		s.port = freeTCPPort(t)
		config := filepath.Join(s.dir, "sshd_config")
		base := fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
HostKey %s
PidFile %s
AuthorizedKeysFile %s
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers %s
LoginGraceTime 20
`, s.port, filepath.Join(s.dir, "host_ed25519"), filepath.Join(s.dir, "sshd.pid"), filepath.Join(s.dir, "authorized_keys"), s.user)
		// OpenSSH 9.8 and later penalise a source address after failed logins; the tests fail
		// logins on purpose, from 127.0.0.1, and must not lock themselves out. Older sshd does not
		// know the option, so it is added only where the configuration check accepts it.
		writeFile(t, config, base+"PerSourcePenalties no\n", 0o600)
		if out, err := exec.Command(bin, "-t", "-f", config).CombinedOutput(); err != nil {
			writeFile(t, config, base, 0o600)
			if out, err := exec.Command(bin, "-t", "-f", config).CombinedOutput(); err != nil {
				t.Fatalf("sshd -t rejects the test configuration: %v: %s", err, out)
			}
		} else if len(out) > 0 {
			t.Logf("sshd -t: %s", out)
		}
		p := testpeers.StartPeer(t, bin, "-D", "-e", "-f", config)
		greeted := false
		testenv.Poll(10*time.Second, 50*time.Millisecond, func() bool {
			greeted = banner(s.port)
			return greeted || p.Exited()
		})
		if greeted {
			return s
		}
		if !p.Exited() {
			t.Fatalf("sshd did not greet on 127.0.0.1:%d within 10s:\n%s", s.port, p.Out.String())
		}
	}
	t.Fatal("sshd exited three times right after starting (port taken?)")
	return nil
}

func banner(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	defer func() { _ = c.Close() }()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-2.0-")
}

func (s *sshd) receivedCommands(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(s.received)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

func (s *sshd) slot(command string) Slot {
	return Slot{Timeout: 10 * time.Second, SSH: &infrav1.SSHDriver{
		Address:      "127.0.0.1",
		Port:         int32(s.port),
		User:         s.user,
		KeySecretRef: infrav1.SSHKeySecretReference{Name: "ssh", Key: "ssh-privatekey"},
		HostKey:      s.hostKey,
		Command:      command,
	}}
}

func (s *sshd) secrets() fakeSecrets {
	return fakeSecrets{"ssh": {"ssh-privatekey": s.clientKeyPEM}}
}

func TestSSHPowerOff(t *testing.T) {
	t.Parallel()
	s := startSSHD(t)
	ctx := context.Background()

	t.Run("default command", func(t *testing.T) {
		out, err := SSH{}.Do(ctx, request(ActionOff, s.slot(""), s.secrets()))
		if err != nil || !out.Done {
			t.Fatalf("Do: %+v, %v", out, err)
		}
		if got := s.receivedCommands(t); len(got) != 1 || got[0] != "systemctl_poweroff" {
			t.Fatalf("sshd ran %q; want the default systemctl poweroff", got)
		}
	})

	t.Run("host key pinned through a Secret", func(t *testing.T) {
		slot := s.slot("sudo systemctl poweroff")
		slot.SSH.HostKey = ""
		slot.SSH.HostKeySecretRef = &infrav1.SecretKeyReference{Name: "ssh-host", Key: "known_hosts"}
		secrets := s.secrets()
		// ssh-keyscan's format: the host first.
		secrets["ssh-host"] = map[string][]byte{"known_hosts": []byte("[127.0.0.1]:" + strconv.Itoa(s.port) + " " + s.hostKey + "\n")}
		if _, err := (SSH{}).Do(ctx, request(ActionOff, slot, secrets)); err != nil {
			t.Fatal(err)
		}
		if got := s.receivedCommands(t); got[len(got)-1] != "sudo_systemctl_poweroff" {
			t.Fatalf("sshd ran %q", got)
		}
	})

	t.Run("connection dropped by the powering-off machine", func(t *testing.T) {
		out, err := SSH{}.Do(ctx, request(ActionOff, s.slot("drop-connection"), s.secrets()))
		if err != nil || !out.Done {
			t.Fatalf("a dropped connection after the command started must count as success: %+v, %v", out, err)
		}
		t.Logf("outcome: %s", out.Detail)
	})

	t.Run("command fails", func(t *testing.T) {
		_, err := SSH{}.Do(ctx, request(ActionOff, s.slot("fail-poweroff"), s.secrets()))
		msg := wantClass(t, err, ClassFailed, string(s.clientKeyPEM))
		if !strings.Contains(msg, "status 3") || !strings.Contains(msg, "password is required") {
			t.Fatalf("want the exit status and the command's message: %v", msg)
		}
	})

	t.Run("command that prints the private key", func(t *testing.T) {
		writeFile(t, filepath.Join(s.dir, "leak"), "oops:\n"+string(s.clientKeyPEM), 0o600)
		_, err := SSH{}.Do(ctx, request(ActionOff, s.slot("leak-poweroff"), s.secrets()))
		lines := strings.Split(strings.TrimSpace(string(s.clientKeyPEM)), "\n")
		msg := wantClass(t, err, ClassFailed, lines[1:len(lines)-1]...)
		if !strings.Contains(msg, "status 3") || !strings.Contains(msg, "oops:") {
			t.Fatalf("want the exit status and the command's output, blanked: %v", msg)
		}
	})

	t.Run("command still running at the timeout", func(t *testing.T) {
		slot := s.slot("hang-poweroff")
		slot.Timeout = 1500 * time.Millisecond
		start := time.Now()
		out, err := SSH{}.Do(ctx, request(ActionOff, slot, s.secrets()))
		if err != nil || !out.Done {
			t.Fatalf("a started command that outlives the call is left to the power status: %+v, %v", out, err)
		}
		if took := time.Since(start); took > slot.Timeout+500*time.Millisecond {
			t.Fatalf("the call took %s, past its %s timeout", took, slot.Timeout)
		}
	})
}

func TestSSHRefusals(t *testing.T) {
	t.Parallel()
	s := startSSHD(t)
	ctx := context.Background()
	before := len(s.receivedCommands(t))

	t.Run("wrong host key pinned", func(t *testing.T) {
		_, _, otherHost := newSSHKey(t)
		slot := s.slot("")
		slot.SSH.HostKey = otherHost
		_, err := SSH{}.Do(ctx, request(ActionOff, slot, s.secrets()))
		msg := wantClass(t, err, ClassConfig, string(s.clientKeyPEM))
		if !strings.Contains(msg, "not the pinned host key") {
			t.Fatalf("want the mismatch named: %v", msg)
		}
	})

	t.Run("no host key pinned", func(t *testing.T) {
		slot := s.slot("")
		slot.SSH.HostKey = ""
		_, err := SSH{}.Do(ctx, request(ActionOff, slot, s.secrets()))
		wantClass(t, err, ClassConfig)
	})

	t.Run("wrong client key", func(t *testing.T) {
		_, otherClient, _ := newSSHKey(t)
		secrets := fakeSecrets{"ssh": {"ssh-privatekey": otherClient}}
		_, err := SSH{}.Do(ctx, request(ActionOff, s.slot(""), secrets))
		wantClass(t, err, ClassAuthFailed, string(otherClient), strings.Split(string(otherClient), "\n")[1])
	})

	t.Run("host key Secret holding a password", func(t *testing.T) {
		const password = "Zq9!xK7#vW2$pL4%"
		slot := s.slot("")
		slot.SSH.HostKey = ""
		slot.SSH.HostKeySecretRef = &infrav1.SecretKeyReference{Name: "ssh-host", Key: "known_hosts"}
		secrets := s.secrets()
		for _, text := range []string{password, "@" + password, s.hostKey + "\n" + password + " " + password} {
			secrets["ssh-host"] = map[string][]byte{"known_hosts": []byte(text)}
			_, err := SSH{}.Do(ctx, request(ActionOff, slot, secrets))
			msg := wantClass(t, err, ClassConfig, password)
			for i := range len(password) - 2 {
				noSecretIn(t, msg, password[i:i+3])
			}
			if !strings.Contains(msg, "is not a public key") && !strings.Contains(msg, "marker") {
				t.Fatalf("want the line named as no key: %v", msg)
			}
		}
	})

	t.Run("revoked host key", func(t *testing.T) {
		_, _, otherHost := newSSHKey(t)
		slot := s.slot("")
		slot.SSH.HostKey = ""
		slot.SSH.HostKeySecretRef = &infrav1.SecretKeyReference{Name: "ssh-host", Key: "known_hosts"}
		secrets := s.secrets()
		hostPort := "[127.0.0.1]:" + strconv.Itoa(s.port)
		for _, text := range []string{
			// The machine's key pinned and revoked: revoked wins.
			hostPort + " " + s.hostKey + "\n@revoked " + hostPort + " " + s.hostKey + "\n",
			// Revoked without host patterns, another key pinned.
			otherHost + "\n@revoked\t" + s.hostKey + "\n",
			// Revoked alone.
			"@revoked * " + s.hostKey + "\n",
		} {
			secrets["ssh-host"] = map[string][]byte{"known_hosts": []byte(text)}
			_, err := SSH{}.Do(ctx, request(ActionOff, slot, secrets))
			msg := wantClass(t, err, ClassConfig, string(s.clientKeyPEM))
			if !strings.Contains(msg, "@revoked") {
				t.Fatalf("want the revocation named: %v", msg)
			}
		}
	})

	t.Run("cert-authority line", func(t *testing.T) {
		_, _, ca := newSSHKey(t)
		slot := s.slot("")
		slot.SSH.HostKey = s.hostKey + "\n@cert-authority *.lan " + ca
		_, err := SSH{}.Do(ctx, request(ActionOff, slot, s.secrets()))
		msg := wantClass(t, err, ClassConfig)
		if !strings.Contains(msg, "line 2 is a @cert-authority line: host certificates are not supported") {
			t.Fatalf("want the CA line refused by name: %v", msg)
		}
	})

	t.Run("key that is not a key", func(t *testing.T) {
		secrets := fakeSecrets{"ssh": {"ssh-privatekey": []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWJ1dC1ub3QtYS1rZXk=\n-----END OPENSSH PRIVATE KEY-----\n")}}
		_, err := SSH{}.Do(ctx, request(ActionOff, s.slot(""), secrets))
		wantClass(t, err, ClassConfig, "c2VjcmV0LWJ1dC1ub3QtYS1rZXk=")
	})

	if after := len(s.receivedCommands(t)); after != before {
		t.Fatalf("a refused connection ran the command")
	}

	t.Run("closed port", func(t *testing.T) {
		slot := s.slot("")
		slot.SSH.Port = int32(freeTCPPort(t))
		_, err := SSH{}.Do(ctx, request(ActionOff, slot, s.secrets()))
		wantClass(t, err, ClassUnreachable, string(s.clientKeyPEM))
	})

	t.Run("server that never greets", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = l.Close() }()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer func() { _ = c.Close() }()
			}
		}()
		slot := s.slot("")
		slot.SSH.Port = int32(l.Addr().(*net.TCPAddr).Port)
		slot.Timeout = 800 * time.Millisecond
		start := time.Now()
		_, err = SSH{}.Do(ctx, request(ActionOff, slot, s.secrets()))
		wantClass(t, err, ClassTimeout)
		if took := time.Since(start); took > slot.Timeout+300*time.Millisecond {
			t.Fatalf("a silent server held the call for %s, past the %s timeout", took, slot.Timeout)
		}
	})

	t.Run("egress policy", func(t *testing.T) {
		l := recordingListener(t)
		policy := DefaultEgressPolicy()
		slot := s.slot("")
		slot.SSH.Port = int32(l.Addr().(*net.TCPAddr).Port)
		_, err := SSH{Egress: &policy}.Do(ctx, request(ActionOff, slot, s.secrets()))
		msg := wantClass(t, err, ClassConfig, string(s.clientKeyPEM))
		if !strings.Contains(msg, "refused by the manager's egress policy (deny=127.0.0.0/8)") {
			t.Fatalf("want the egress policy named: %v", msg)
		}
		expectNoConnection(t, l)
	})

	t.Run("power on and status are unsupported", func(t *testing.T) {
		_, err := SSH{}.Do(ctx, request(ActionOn, s.slot(""), s.secrets()))
		wantClass(t, err, ClassUnsupported)
		_, err = SSH{}.Status(ctx, request(ActionStatus, s.slot(""), s.secrets()))
		wantClass(t, err, ClassUnsupported)
	})
}
