package importer_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/importer"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/doctable"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// badCase is one input the import refuses, with the one message it must refuse it with.
type badCase struct {
	id   string
	run  func() error
	want string
}

// hostKey is a valid public key for the sshHostKey column.
const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHFdku8tD1f2XZEFCmpakiGGVgZoLR6MhN/6wRt9u4gQ"

func upstreamInput(doc string) func() error {
	return func() error {
		_, err := importer.Upstream([]importer.Input{{Name: "in.yaml", Data: []byte(doc)}}, importer.Options{})
		return err
	}
}

// node is an upstream Node named worker-3 in group workers whose spec is the valid spec below
// with the lines of change: a line "key: value" replaces the line of that key, or is added.
func node(change string) func() error {
	return upstreamInput(nodeDoc("metadata: {name: worker-3, labels: {group: workers}}", change))
}

func nodeDoc(metadata, change string) string {
	lines := []string{
		`  powerState: "off"`,
		`  kubernetesNodeName: worker-3`,
		`  startupPodSpec: {image: "busybox:1.37"}`,
		`  shutdownPodSpec: {image: "busybox:1.37"}`,
	}
	for _, c := range strings.Split(strings.Trim(change, "\n"), "\n") {
		if c == "" {
			continue
		}
		key, _, _ := strings.Cut(strings.TrimSpace(c), ":")
		replaced := false
		for i, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), key+":") {
				lines[i], replaced = c, true
			}
		}
		if !replaced {
			lines = append(lines, c)
		}
	}
	return "apiVersion: infra.homecluster.dev/v1alpha1\nkind: Node\n" + metadata + "\nspec:\n" + strings.Join(lines, "\n") + "\n"
}

func group(spec string) func() error {
	return upstreamInput("apiVersion: infra.homecluster.dev/v1alpha1\nkind: Group\nmetadata: {name: workers}\nspec:\n" + spec + "\n")
}

func inventory(name, data string) func() error {
	return func() error {
		_, err := importer.Inventory(importer.Input{Name: name, Data: []byte(data)}, importer.Options{})
		return err
	}
}

func csv(data string) func() error { return inventory("inv.csv", data) }

func badCases() []badCase {
	volumes := func(v string) string { return "  startupPodSpec: {image: \"busybox:1.37\", volumes: [" + v + "]}" }
	many := func(n int, item func(i int) string) string {
		var items []string
		for i := range n {
			items = append(items, item(i))
		}
		return strings.Join(items, ", ")
	}
	ssh := "name,group,bmc,mac,stop,sshSecret,sshHostKey\n"
	return []badCase{
		// Upstream manifests.
		{"import-upstream-not-object", upstreamInput("just a string\n"),
			`in.yaml document 1: not a Kubernetes object (a map with apiVersion and kind)`},
		{"import-upstream-yaml-syntax", upstreamInput("kind: [\n"),
			`in.yaml document 1: yaml: line 1: did not find expected node content`},
		{"import-upstream-list-items", upstreamInput("apiVersion: v1\nkind: List\nitems: 3\n"),
			`in.yaml document 1: List items: want a list, got the number 3`},
		{"import-upstream-no-name", upstreamInput(nodeDoc("metadata: {labels: {group: workers}}", "")),
			`in.yaml document 1: node without metadata.name`},
		{"import-upstream-bad-name", upstreamInput(nodeDoc("metadata: {name: Worker_3, labels: {group: workers}}", "")),
			`node Worker_3: metadata.name: "Worker_3" is not a valid name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{"import-upstream-defined-twice", upstreamInput(nodeDoc("metadata: {name: worker-3, namespace: homelab, labels: {group: workers}}", "") +
			"---\n" + nodeDoc("metadata: {name: worker-3, namespace: homelab, labels: {group: workers}}", "")),
			`node homelab/worker-3: defined twice in namespace homelab (in.yaml document 1, in.yaml document 2)`},
		{"import-upstream-spec-not-map", upstreamInput("apiVersion: infra.homecluster.dev/v1alpha1\nkind: Node\nmetadata: {name: worker-3, labels: {group: workers}}\nspec: [on]\n"),
			`node worker-3: spec: want a map, got a list`},
		{"import-upstream-wrong-type", node(`  shutdownPodSpec: {image: "busybox:1.37", command: poweroff}`),
			`node worker-3: spec.shutdownPodSpec.command: want a list of strings, got "poweroff"`},
		{"import-upstream-label-not-string", upstreamInput(nodeDoc("metadata: {name: worker-3, labels: {group: workers, rack: 4}}", "")),
			`node worker-3: metadata.labels.rack: want a string, got the number 4`},
		{"import-upstream-bad-threshold", group(`  scaleDownGpuUtilizationThreshold: "30"`),
			`group workers: spec.scaleDownGpuUtilizationThreshold: "30" is not a fraction from 0 to 1 such as "0.5" (the Group's pattern is ^(0(\.[0-9]+)?|1(\.0+)?)$)`},
		{"import-upstream-bad-duration", group(`  scaleDownUnneededTime: 1d`),
			`group workers: spec.scaleDownUnneededTime: "1d" is not a duration such as 10m or 90s`},
		{"import-upstream-negative-duration", group(`  maxNodeProvisionTime: -5m`),
			`group workers: spec.maxNodeProvisionTime: "-5m" is not a positive duration`},
		{"import-upstream-no-group-label", upstreamInput(nodeDoc("metadata: {name: worker-3}", "")),
			`node worker-3: metadata.labels.group: missing: upstream's Group membership label is the Machine's spec.group`},
		{"import-upstream-bad-group-label", upstreamInput(nodeDoc("metadata: {name: worker-3, labels: {group: GPU_nodes}}", "")),
			`node worker-3: metadata.labels.group: "GPU_nodes" is not a valid Group name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{"import-upstream-no-spec", upstreamInput("apiVersion: infra.homecluster.dev/v1alpha1\nkind: Node\nmetadata: {name: worker-3, labels: {group: workers}}\n"),
			`node worker-3: spec: missing`},
		{"import-upstream-no-power-state", node(`  powerState: null`),
			`node worker-3: spec.powerState: missing: want "on" or "off"`},
		{"import-upstream-bad-power-state", node(`  powerState: standby`),
			`node worker-3: spec.powerState: "standby" is not "on" or "off"`},
		{"import-upstream-kubernetes-node-name-too-long", node(`  kubernetesNodeName: ` + strings.Repeat("a", 254)),
			`node worker-3: spec.kubernetesNodeName: longer than 253 characters`},
		{"import-upstream-no-startup", node(`  startupPodSpec: null`),
			`node worker-3: spec.startupPodSpec: missing: it is how the machine powers on`},
		{"import-upstream-no-shutdown", node(`  shutdownPodSpec: null`),
			`node worker-3: spec.shutdownPodSpec: missing: it is how the machine powers off`},
		{"import-upstream-no-image", node(`  startupPodSpec: {image: ""}`),
			`node worker-3: spec.startupPodSpec.image: missing`},
		{"import-upstream-volume-source", node(volumes(`{name: creds, mountPath: /etc/creds}`)),
			`node worker-3: spec.startupPodSpec.volumes[0]: set exactly one of secretName or configMapName`},
		{"import-upstream-volume-two-sources", node(volumes(`{name: creds, mountPath: /etc/creds, secretName: a, configMapName: b}`)),
			`node worker-3: spec.startupPodSpec.volumes[0]: set exactly one of secretName or configMapName`},
		{"import-upstream-volume-no-name", node(volumes(`{mountPath: /etc/creds, secretName: a}`)),
			`node worker-3: spec.startupPodSpec.volumes[0].name: missing`},
		{"import-upstream-volume-bad-name", node(volumes(`{name: Creds, mountPath: /etc/creds, secretName: a}`)),
			`node worker-3: spec.startupPodSpec.volumes[0].name: "Creds" is not a valid volume name: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`},
		{"import-upstream-volume-name-twice", node(volumes(`{name: creds, mountPath: /a, secretName: a}, {name: creds, mountPath: /b, secretName: b}`)),
			`node worker-3: spec.startupPodSpec.volumes[1].name: "creds" names two volumes`},
		{"import-upstream-volume-no-mount-path", node(volumes(`{name: creds, secretName: a}`)),
			`node worker-3: spec.startupPodSpec.volumes[0].mountPath: missing`},
		{"import-upstream-too-many-volumes", node(volumes(many(17, func(i int) string { return fmt.Sprintf("{name: v%d, mountPath: /v%d, secretName: s}", i, i) }))),
			`node worker-3: spec.startupPodSpec.volumes: 17 volumes, at most 16`},
		{"import-upstream-negative-ttl", node(`  shutdownPodSpec: {image: "busybox:1.37", ttlSecondsAfterFinished: -1}`),
			`node worker-3: spec.shutdownPodSpec.ttlSecondsAfterFinished: -1 is negative`},
		{"import-upstream-bad-hourly-rate", node(`  pricing: {hourlyRate: "0,12", podRate: ""}`),
			`node worker-3: spec.pricing.hourlyRate: "0,12" is not a price such as "0.12"`},
		{"import-upstream-taint-no-key", node(`  taintsToRemove: [{effect: NoSchedule}]`),
			`node worker-3: spec.taintsToRemove[0].key: missing`},
		{"import-upstream-too-many-taints", node(`  taintsToRemove: [` + many(33, func(i int) string { return fmt.Sprintf("{key: t%d}", i) }) + `]`),
			`node worker-3: spec.taintsToRemove: 33 taint keys, at most 32`},

		// Inventories.
		{"import-inventory-no-header", csv(""),
			`inv.csv: no header row (name,group,bmc, ...)`},
		{"import-inventory-no-machines", csv("name,group,bmc\n"),
			`inv.csv: no machines`},
		{"import-inventory-csv-syntax", csv("name,group,bmc\nw1,\"wor\"kers,ipmi\n"),
			`inv.csv line 2: extraneous or missing " in quoted-field`},
		{"import-inventory-unknown-column", csv("name,group,bmc,MAC\nw1,workers,none,aa:bb:cc:dd:ee:01\n"),
			`inv.csv line 1: unknown column "MAC" (the columns are name, group, bmc, mac, address, credentials, kubernetesNodeName, online, namespace, stop, sshSecret, sshHostKey)`},
		{"import-inventory-column-twice", csv("name,group,bmc,group\n"),
			`inv.csv line 1: column "group" appears twice`},
		{"import-inventory-missing-column", csv("name,group,mac\n"),
			`inv.csv line 1: no column "bmc" (name, group and bmc are required)`},
		{"import-inventory-cell-count", csv("name,group,bmc,address,credentials\nw1,workers,ipmi,10.0.0.1\n"),
			`inv.csv line 2: 4 cells, but the header has 5 columns`},
		{"import-inventory-missing-name", csv("name,group,bmc,address,credentials\n,workers,ipmi,10.0.0.1,bmc\n"),
			`inv.csv line 2: missing name`},
		{"import-inventory-missing-group", csv("name,group,bmc,address,credentials\nw1,,ipmi,10.0.0.1,bmc\n"),
			`inv.csv line 2: missing group`},
		{"import-inventory-missing-bmc", csv("name,group,bmc,address,credentials\nw1,workers,,,\n"),
			`inv.csv line 2: missing bmc (ipmi, redfish or none)`},
		{"import-inventory-bad-name", csv("name,group,bmc,address,credentials\nWorker_1,workers,ipmi,10.0.0.1,bmc\n"),
			`inv.csv line 2: name "Worker_1" is not a valid object name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{"import-inventory-bad-group", csv("name,group,bmc,address,credentials\nw1,Workers,ipmi,10.0.0.1,bmc\n"),
			`inv.csv line 2: group "Workers" is not a valid Group name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{"import-inventory-bad-namespace", csv("name,group,bmc,address,credentials,namespace\nw1,workers,ipmi,10.0.0.1,bmc,home.lab\n"),
			`inv.csv line 2: namespace "home.lab" is not a valid namespace: must not contain dots`},
		{"import-inventory-bad-kubernetes-node-name", csv("name,group,bmc,address,credentials,kubernetesNodeName\nw1,workers,ipmi,10.0.0.1,bmc,W1.lan\n"),
			`inv.csv line 2: kubernetesNodeName "W1.lan" is not a valid Node name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{"import-inventory-bad-online", csv("name,group,bmc,address,credentials,online\nw1,workers,ipmi,10.0.0.1,bmc,yes\n"),
			`inv.csv line 2: online "yes" is not true or false`},
		{"import-inventory-bad-bmc", csv("name,group,bmc,address,credentials\nw1,workers,idrac,10.0.0.1,bmc\n"),
			`inv.csv line 2: bmc "idrac" is not ipmi, redfish or none`},
		{"import-inventory-ipmi-no-address", csv("name,group,bmc,address,credentials\nw1,workers,ipmi,,bmc\n"),
			`inv.csv line 2: bmc ipmi needs address (the BMC's host name or IP address)`},
		{"import-inventory-ipmi-bad-address", csv("name,group,bmc,address,credentials\nw1,workers,ipmi,https://10.0.0.1,bmc\n"),
			`inv.csv line 2: address "https://10.0.0.1" is not a host name or IP address: bmc ipmi takes the BMC's address (a URL is for redfish)`},
		{"import-inventory-redfish-no-address", csv("name,group,bmc,address,credentials\nw1,workers,redfish,,bmc\n"),
			`inv.csv line 2: bmc redfish needs address (the Redfish endpoint, e.g. https://10.0.0.5)`},
		{"import-inventory-redfish-bad-address", csv("name,group,bmc,address,credentials\nw1,workers,redfish,10.0.0.5,bmc\n"),
			`inv.csv line 2: address "10.0.0.5" is not an http(s) URL: bmc redfish takes the Redfish endpoint, e.g. https://10.0.0.5`},
		{"import-inventory-no-credentials", csv("name,group,bmc,address,credentials\nw1,workers,ipmi,10.0.0.1,\n"),
			`inv.csv line 2: bmc ipmi needs credentials (the name of a Secret with username and password)`},
		{"import-inventory-bad-credentials", csv("name,group,bmc,address,credentials\nw1,workers,ipmi,10.0.0.1,BMC creds\n"),
			`inv.csv line 2: credentials "BMC creds" is not a valid Secret name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{"import-inventory-none-no-mac", csv(ssh + "w1,workers,none,,ssh:root@w1.lan,w1-ssh," + hostKey + "\n"),
			`inv.csv line 2: bmc none needs mac (Wake-on-LAN powers the machine on)`},
		{"import-inventory-bad-mac", csv(ssh + "w1,workers,none,aa:bb:cc:dd:ee,ssh:root@w1.lan,w1-ssh," + hostKey + "\n"),
			`inv.csv line 2: mac "aa:bb:cc:dd:ee" is not a MAC address (six hex byte pairs separated by : or by -, the same throughout, e.g. aa:bb:cc:dd:ee:ff)`},
		{"import-inventory-mac-mixed-separators", csv(ssh + "w1,workers,none,aa:bb:cc-dd:ee:ff,ssh:root@w1.lan,w1-ssh," + hostKey + "\n"),
			`inv.csv line 2: mac "aa:bb:cc-dd:ee:ff" is not a MAC address (six hex byte pairs separated by : or by -, the same throughout, e.g. aa:bb:cc:dd:ee:ff)`},
		{"import-inventory-none-address", csv("name,group,bmc,mac,address,stop,sshSecret,sshHostKey\nw1,workers,none,aa:bb:cc:dd:ee:01,10.0.0.1,ssh:root@w1.lan,w1-ssh," + hostKey + "\n"),
			`inv.csv line 2: bmc none takes no address: address and credentials belong to a BMC`},
		{"import-inventory-none-credentials", csv("name,group,bmc,mac,credentials,stop,sshSecret,sshHostKey\nw1,workers,none,aa:bb:cc:dd:ee:01,bmc,ssh:root@w1.lan,w1-ssh," + hostKey + "\n"),
			`inv.csv line 2: bmc none takes no credentials: address and credentials belong to a BMC`},
		{"import-inventory-no-way-to-power-off", csv("name,group,bmc,mac\nw1,workers,none,aa:bb:cc:dd:ee:01\n"),
			`inv.csv line 2: machine "w1" has no way to power off: bmc none gives it Wake-on-LAN, which only powers on; add stop (ssh:<user>@<address>) with sshSecret and sshHostKey, or a BMC`},
		{"import-inventory-bad-stop", csv(ssh + "w1,workers,none,aa:bb:cc:dd:ee:01,http://plug.lan/w1/off,w1-ssh," + hostKey + "\n"),
			`inv.csv line 2: stop "http://plug.lan/w1/off" is not ssh:<user>@<address>`},
		{"import-inventory-stop-bad-host", csv(ssh + "w1,workers,none,aa:bb:cc:dd:ee:01,ssh:root@w1 lan,w1-ssh," + hostKey + "\n"),
			`inv.csv line 2: stop "ssh:root@w1 lan": "w1 lan" is not a host name or IP address`},
		{"import-inventory-stop-no-secret", csv(ssh + "w1,workers,none,aa:bb:cc:dd:ee:01,ssh:root@w1.lan,," + hostKey + "\n"),
			`inv.csv line 2: stop needs sshSecret (a kubernetes.io/ssh-auth Secret with the private key)`},
		{"import-inventory-stop-bad-secret", csv(ssh + "w1,workers,none,aa:bb:cc:dd:ee:01,ssh:root@w1.lan,W1_ssh," + hostKey + "\n"),
			`inv.csv line 2: sshSecret "W1_ssh" is not a valid Secret name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		{"import-inventory-stop-no-host-key", csv(ssh + "w1,workers,none,aa:bb:cc:dd:ee:01,ssh:root@w1.lan,w1-ssh,\n"),
			`inv.csv line 2: stop needs sshHostKey (the machine's public host key, "ssh-ed25519 AAAA...")`},
		{"import-inventory-bad-host-key", csv(ssh + "w1,workers,none,aa:bb:cc:dd:ee:01,ssh:root@w1.lan,w1-ssh,SHA256:3q2+7w\n"),
			`inv.csv line 2: sshHostKey is not a public key in authorized_keys format ("ssh-ed25519 AAAA...")`},
		{"import-inventory-ssh-secret-without-stop", csv("name,group,bmc,address,credentials,sshSecret\nw1,workers,ipmi,10.0.0.1,bmc,w1-ssh\n"),
			`inv.csv line 2: sshSecret is set but stop is empty`},
		{"import-inventory-ssh-host-key-without-stop", csv("name,group,bmc,address,credentials,sshHostKey\nw1,workers,ipmi,10.0.0.1,bmc," + hostKey + "\n"),
			`inv.csv line 2: sshHostKey is set but stop is empty`},
		{"import-inventory-name-twice", csv("name,group,bmc,address,credentials\nw1,workers,ipmi,10.0.0.1,bmc\nw1,workers,ipmi,10.0.0.2,bmc\n"),
			`inv.csv line 3: name "w1" is already used (line 2)`},
		{"import-inventory-yaml-syntax", inventory("inv.yaml", "- name: [\n"),
			`inv.yaml: yaml: line 1: did not find expected node content`},
		{"import-inventory-yaml-not-list", inventory("inv.yaml", "name: w1\ngroup: workers\n"),
			`inv.yaml: want a list of rows, one map per machine (- name: ...)`},
		{"import-inventory-yaml-row-not-map", inventory("inv.yaml", "- w1\n"),
			`inv.yaml item 1: want a map of column to value, got "w1"`},
		{"import-inventory-yaml-unknown-column", inventory("inv.yaml", "- {name: w1, group: workers, bmc: ipmi, address: 10.0.0.1, secret: bmc}\n"),
			`inv.yaml item 1: unknown column "secret" (the columns are name, group, bmc, mac, address, credentials, kubernetesNodeName, online, namespace, stop, sshSecret, sshHostKey)`},
		{"import-inventory-yaml-number", inventory("inv.yaml", "- {name: 012, group: workers, bmc: ipmi, address: 10.0.0.1, credentials: bmc}\n"),
			`inv.yaml item 1: name: got the number 10: quote the value`},
		{"import-inventory-yaml-boolean", inventory("inv.yaml", "- {name: w1, group: workers, bmc: none, mac: \"aa:bb:cc:dd:ee:01\", stop: no}\n"),
			`inv.yaml item 1: stop: got a boolean (YAML reads unquoted yes, no, on, off, true and false so): quote the value`},
		{"import-inventory-yaml-not-scalar", inventory("inv.yaml", "- {name: w1, group: workers, bmc: ipmi, address: [10.0.0.1], credentials: bmc}\n"),
			`inv.yaml item 1: address: want a single value, got a list`},
	}
}

// TestBadInputTable imports every refused input and checks that it is refused with exactly one
// message: the one written in the case, and the row of docs/bad-input.md with the case's id.
func TestBadInputTable(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(t *testing.T) string{}
	for _, c := range badCases() {
		if _, dup := cases[c.id]; dup {
			t.Fatalf("case %s twice", c.id)
		}
		cases[c.id] = func(t *testing.T) string {
			got := refusal(t, c)
			if got != c.want {
				t.Fatalf("message:\n got: %s\nwant: %s", got, c.want)
			}
			return got
		}
	}
	doctable.Check(t, root, "import-", cases)
}

// refusal runs a case and returns its one message.
func refusal(t *testing.T, c badCase) string {
	t.Helper()
	err := c.run()
	var ie *importer.Error
	if !errors.As(err, &ie) {
		t.Fatalf("%s: want an *importer.Error, got %v", c.id, err)
	}
	if len(ie.Problems) != 1 {
		t.Fatalf("%s: want one problem, got %d:\n%s", c.id, len(ie.Problems), ie)
	}
	return ie.Problems[0]
}
