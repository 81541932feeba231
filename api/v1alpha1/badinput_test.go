package v1alpha1_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/doctable"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// machineWith is a valid Machine spec (Wake-on-LAN on, IPMI off) with lines added.
func machineWith(lines string) string {
	return machineYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}` + lines)
}

// The CRD rows of docs/bad-input.md, applied with kubectl as a user would: the documented text
// is kubectl's output.
func TestBadInputTableCRD(t *testing.T) {
	kubectl := env.Kubectl(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	apply := func(doc string) func(t *testing.T) string {
		return func(t *testing.T) string {
			u := fromYAML(t, doc)
			data, err := json.Marshal(u.Object)
			if err != nil {
				t.Fatal(err)
			}
			cmd := kubectl(t.Context(), "apply", "-f", "-")
			cmd.Stdin = strings.NewReader(string(data))
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("kubectl accepted the object: %s", out)
			}
			return string(out)
		}
	}
	doctable.Check(t, root, "crd-", map[string]func(*testing.T) string{
		"crd-min-greater-than-max": apply(groupYAML(`
  minSize: 3
  maxSize: 2`)),
		"crd-negative-size": apply(groupYAML(`
  minSize: -1`)),
		"crd-bad-threshold": apply(groupYAML(`
  autoscalingOptions: {scaleDownUtilizationThreshold: "1.5"}`)),
		"crd-duration-too-long": apply(machineYAML(`
  group: workers
  power:
    start: {timeout: 2h, wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}`)),
		"crd-negative-price": apply(machineWith(`
  pricing: {hourlyRate: "-0.1"}`)),
		"crd-too-many-job-args": apply(machineYAML(`
  group: workers
  power:
    start: {job: {image: busybox, args: [` + strings.Repeat(`"a", `, 99) + `"a"]}}`)),
		"crd-repair-unknown-policy": apply(groupYAML(`
  repair: {powerLoss: Ignore}`)),
		"crd-repair-observe-too-often": apply(groupYAML(`
  repair: {observeInterval: 1s}`)),
		"crd-repair-too-many-cycles": apply(groupYAML(`
  repair: {stuckNode: {maxPowerCycles: 50}}`)),
		"crd-two-drivers": apply(machineYAML(`
  group: workers
  power:
    start:
      wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}
      ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`)),
		"crd-no-driver": apply(machineYAML(`
  group: workers
  power:
    start: {}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`)),
		"crd-bad-mac": apply(machineYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee"}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`)),
		"crd-mac-mixed-separators": apply(machineYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc-dd:ee:ff"}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`)),
		"crd-wol-cannot-stop": apply(machineYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}`)),
		"crd-ssh-without-host-key": apply(machineYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {ssh: {address: h, user: root, keySecretRef: {name: k, key: k}}}`)),
		"crd-inline-password": apply(machineYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {ipmi: {address: 192.0.2.20, password: hunter2, credentialsSecretRef: {name: bmc}}}`)),
		"crd-slot-missing-secret-ref": apply(machineYAML(`
  group: workers
  power:
    start: {ipmi: {address: 192.0.2.20}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`)),
		"crd-online-not-boolean": apply(machineWith(`
  online: "yes"`)),
		"crd-old-power-state": apply(machineWith(`
  powerState: "on"`)),
		"crd-two-bmc-kinds": apply(machineYAML(`
  group: workers
  bmc: {ipmi: {address: 192.0.2.20}, redfish: {endpoint: "https://192.0.2.20"}}`)),
		"crd-default-bad-attempts": apply(groupYAML(`
  machineDefaults: {maxAttempts: 0}`)),
		"crd-zero-duration": apply(machineWith(`
  bootTimeout: 0s`)),
		"crd-bad-duration": apply(machineWith(`
  bootTimeout: 1d`)),
		"crd-missing-group": apply(machineYAML(`
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`)),
	})
}
