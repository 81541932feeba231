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
		"crd-schedule-bad-cron": apply(groupYAML(`
  schedules: [{name: warm, cron: "every day at 8", duration: 10h, minOnline: 1}]`)),
		"crd-schedule-cron-without-duration": apply(groupYAML(`
  schedules: [{name: warm, cron: "0 8 * * 1-5", minOnline: 1}]`)),
		"crd-schedule-both-forms": apply(groupYAML(`
  schedules: [{name: warm, cron: "0 8 * * 1-5", duration: 10h, start: "08:00", end: "18:00", minOnline: 1}]`)),
		"crd-schedule-bad-time": apply(groupYAML(`
  schedules: [{name: warm, start: "8:00", end: "18:00", minOnline: 1}]`)),
		"crd-schedule-bad-day": apply(groupYAML(`
  schedules: [{name: warm, days: [Monday], start: "08:00", end: "18:00", minOnline: 1}]`)),
		"crd-schedule-unknown-time-zone": apply(groupYAML(`
  schedules: [{name: warm, start: "08:00", end: "18:00", timeZone: Europe/Atlantis, minOnline: 1}]`)),
		"crd-schedule-floor-above-max": apply(groupYAML(`
  maxSize: 2
  schedules: [{name: warm, start: "08:00", end: "18:00", minOnline: 3}]`)),
		"crd-schedule-min-above-max-online": apply(groupYAML(`
  schedules: [{name: odd, start: "08:00", end: "18:00", minOnline: 2, maxOnline: 1}]`)),
		"crd-schedule-no-limit": apply(groupYAML(`
  schedules: [{name: idle, start: "08:00", end: "18:00"}]`)),
		"crd-schedule-excess-without-max": apply(groupYAML(`
  schedules: [{name: quiet, start: "23:00", end: "07:00", minOnline: 1, powerOffExcess: true}]`)),
		"crd-schedule-duplicate-name": apply(groupYAML(`
  schedules: [{name: quiet, start: "23:00", end: "07:00", maxOnline: 0}, {name: quiet, start: "12:00", end: "13:00", maxOnline: 0}]`)),
		"crd-schedule-bad-name": apply(groupYAML(`
  schedules: [{name: Quiet Hours, start: "23:00", end: "07:00", maxOnline: 0}]`)),
		"crd-maintenance-wake-too-long": apply(groupYAML(`
  maintenance: {offLongerThan: 168h, wakeFor: 48h}`)),
		"crd-cycling-zero-power-ons": apply(groupYAML(`
  powerCycling: {maxPowerOnsPerDay: 0}`)),
		"crd-relayed-wake-secureon": apply(machineYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01", via: lan-2, secureOnSecretRef: {name: wol, key: password}}}
    stop: {agent: {}}`)),
		"crd-bad-segment": apply(machineYAML(`
  group: workers
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01", via: "LAN 2"}}
    stop: {agent: {}}`)),
		"crd-agent-cannot-start": apply(machineYAML(`
  group: workers
  power:
    start: {agent: {}}
    stop: {agent: {}}`)),
		"crd-missing-group": apply(machineYAML(`
  power:
    start: {wakeOnLAN: {mac: "aa:bb:cc:dd:ee:01"}}
    stop: {ipmi: {address: 192.0.2.20, credentialsSecretRef: {name: bmc}}}`)),
	})
}
