package power

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// wolListener is the machine's NIC: a UDP socket on 127.0.0.1 that collects datagrams.
func wolListener(t *testing.T) (*net.UDPConn, int) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, c.LocalAddr().(*net.UDPAddr).Port
}

// receive reads datagrams until none arrives for quiet.
func receive(t *testing.T, c *net.UDPConn, quiet time.Duration) [][]byte {
	t.Helper()
	var got [][]byte
	buf := make([]byte, 2048)
	for {
		_ = c.SetReadDeadline(time.Now().Add(quiet))
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			return got
		}
		got = append(got, append([]byte(nil), buf[:n]...))
	}
}

// parseMagicPacket checks the layout independently of MagicPacket: 6x 0xFF, 16 copies of one
// MAC, then nothing or a 4- or 6-byte SecureOn password.
func parseMagicPacket(t *testing.T, p []byte) (mac net.HardwareAddr, password []byte) {
	t.Helper()
	if len(p) != 102 && len(p) != 106 && len(p) != 108 {
		t.Fatalf("magic packet of %d bytes; want 102, 106 or 108", len(p))
	}
	for i := range 6 {
		if p[i] != 0xFF {
			t.Fatalf("byte %d of the sync stream is %#x", i, p[i])
		}
	}
	mac = net.HardwareAddr(p[6:12])
	for i := range 16 {
		if !bytes.Equal(p[6+6*i:12+6*i], mac) {
			t.Fatalf("MAC copy %d differs: % x", i, p[6+6*i:12+6*i])
		}
	}
	return mac, p[102:]
}

func wolSlot(port int) Slot {
	return Slot{Timeout: 5 * time.Second, WakeOnLAN: &infrav1.WakeOnLANDriver{
		MAC: "52:54:00:12:34:56", BroadcastAddress: "127.0.0.1", Port: int32(port),
	}}
}

func TestWakeOnLANSendsRepeatedMagicPacket(t *testing.T) {
	t.Parallel()
	c, port := wolListener(t)
	out, err := WakeOnLAN{}.Do(context.Background(), request(ActionOn, wolSlot(port), nil))
	if err != nil || !out.Done {
		t.Fatalf("Do: %+v, %v", out, err)
	}
	got := receive(t, c, 500*time.Millisecond)
	if len(got) != WakeOnLANSends {
		t.Fatalf("received %d packets; want %d (packets get lost, so the driver repeats)", len(got), WakeOnLANSends)
	}
	want := append(bytes.Repeat([]byte{0xFF}, 6), bytes.Repeat([]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, 16)...)
	for i, p := range got {
		if !bytes.Equal(p, want) {
			t.Fatalf("packet %d (%d bytes) is not the 102-byte magic packet: % x", i, len(p), p)
		}
		if mac, pw := parseMagicPacket(t, p); mac.String() != "52:54:00:12:34:56" || len(pw) != 0 {
			t.Fatalf("packet %d: mac %s, password %d bytes", i, mac, len(pw))
		}
	}
}

func TestWakeOnLANSecureOn(t *testing.T) {
	t.Parallel()
	c, port := wolListener(t)
	slot := wolSlot(port)
	slot.WakeOnLAN.MAC = "AA-BB-CC-DD-EE-0F"
	slot.WakeOnLAN.SecureOnSecretRef = &infrav1.SecretKeyReference{Name: "wol", Key: "password"}
	secrets := fakeSecrets{"wol": {"password": []byte("01:23:45:67:89:ab\n")}}

	if _, err := (WakeOnLAN{}).Do(context.Background(), request(ActionOn, slot, secrets)); err != nil {
		t.Fatal(err)
	}
	got := receive(t, c, 500*time.Millisecond)
	if len(got) != WakeOnLANSends {
		t.Fatalf("received %d packets; want %d", len(got), WakeOnLANSends)
	}
	for _, p := range got {
		if len(p) != 108 {
			t.Fatalf("SecureOn packet of %d bytes; want 108", len(p))
		}
		mac, pw := parseMagicPacket(t, p)
		if mac.String() != "aa:bb:cc:dd:ee:0f" || !bytes.Equal(pw, []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab}) {
			t.Fatalf("mac %s, password % x", mac, pw)
		}
	}

	// A password that is not six bytes is a configuration error that does not repeat it.
	secrets["wol"]["password"] = []byte("hunter2-secret")
	_, err := WakeOnLAN{}.Do(context.Background(), request(ActionOn, slot, secrets))
	wantClass(t, err, ClassConfig, "hunter2-secret")
	if extra := receive(t, c, 200*time.Millisecond); len(extra) != 0 {
		t.Fatalf("sent %d packets despite the bad password", len(extra))
	}
}

// TestWakeOnLANMatchesDebianWakeonlan checks the listener and parser against an independent
// sender, Debian's wakeonlan, and that the driver's packet is byte for byte the same.
func TestWakeOnLANMatchesDebianWakeonlan(t *testing.T) {
	t.Parallel()
	bin := requireBinary(t, "wakeonlan")
	c, port := wolListener(t)
	out, err := exec.Command(bin, "-i", "127.0.0.1", "-p", strconv.Itoa(port), "52:54:00:12:34:56").CombinedOutput()
	if err != nil {
		t.Fatalf("wakeonlan: %v: %s", err, out)
	}
	theirs := receive(t, c, 500*time.Millisecond)
	if len(theirs) != 1 {
		t.Fatalf("wakeonlan sent %d packets; want 1", len(theirs))
	}
	if mac, pw := parseMagicPacket(t, theirs[0]); mac.String() != "52:54:00:12:34:56" || len(pw) != 0 {
		t.Fatalf("parsed wakeonlan's packet as mac %s, password %d bytes", mac, len(pw))
	}

	if _, err := (WakeOnLAN{}).Do(context.Background(), request(ActionOn, wolSlot(port), nil)); err != nil {
		t.Fatal(err)
	}
	ours := receive(t, c, 500*time.Millisecond)
	if len(ours) == 0 || !bytes.Equal(ours[0], theirs[0]) {
		t.Fatalf("the driver's packet differs from wakeonlan's:\nours:   % x\ntheirs: % x", ours, theirs[0])
	}
}

func TestWakeOnLANCannotPowerOffOrReadStatus(t *testing.T) {
	t.Parallel()
	_, port := wolListener(t)
	_, err := WakeOnLAN{}.Do(context.Background(), request(ActionOff, wolSlot(port), nil))
	wantClass(t, err, ClassUnsupported)
	_, err = WakeOnLAN{}.Status(context.Background(), request(ActionStatus, wolSlot(port), nil))
	wantClass(t, err, ClassUnsupported)
}

func TestWakeOnLANClosedPortStillSends(t *testing.T) {
	t.Parallel()
	// Nothing answers a magic packet, and nothing listening is normal for a machine that is
	// off: the ICMP port-unreachable that loopback returns must not turn into an error.
	out, err := WakeOnLAN{}.Do(context.Background(), request(ActionOn, wolSlot(freeUDPPort(t)), nil))
	if err != nil || !out.Done {
		t.Fatalf("Do: %+v, %v", out, err)
	}
}

func TestWakeOnLANEgressPolicy(t *testing.T) {
	t.Parallel()
	c, port := wolListener(t)
	policy := DefaultEgressPolicy()
	_, err := WakeOnLAN{Egress: &policy}.Do(context.Background(), request(ActionOn, wolSlot(port), fakeSecrets{}))
	msg := wantClass(t, err, ClassConfig)
	if !strings.Contains(msg, "connecting to 127.0.0.1 is refused by the manager's egress policy (deny=127.0.0.0/8)") {
		t.Fatalf("want the egress policy named: %v", msg)
	}
	nothingSent(t, c)

	allowed, err := ParseEgressPolicy("default,allow=127.0.0.1/32")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (WakeOnLAN{Egress: &allowed}).Do(context.Background(), request(ActionOn, wolSlot(port), fakeSecrets{})); err != nil {
		t.Fatal(err)
	}
}
