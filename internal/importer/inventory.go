package importer

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// The inventory's columns, in the order the messages list them.
const (
	colName               = "name"
	colGroup              = "group"
	colBMC                = "bmc"
	colMAC                = "mac"
	colAddress            = "address"
	colCredentials        = "credentials"
	colKubernetesNodeName = "kubernetesNodeName"
	colOnline             = "online"
	colNamespace          = "namespace"
	colStop               = "stop"
	colSSHSecret          = "sshSecret"
	colSSHHostKey         = "sshHostKey"
)

var (
	columns = []string{colName, colGroup, colBMC, colMAC, colAddress, colCredentials,
		colKubernetesNodeName, colOnline, colNamespace, colStop, colSSHSecret, colSSHHostKey}
	requiredColumns = []string{colName, colGroup, colBMC}
)

// The values of the bmc column.
const (
	bmcIPMI    = "ipmi"
	bmcRedfish = "redfish"
	bmcNone    = "none"
)

// sshStopPrefix starts the stop column's only form, ssh:<user>@<address>.
const sshStopPrefix = "ssh:"

// row is one machine of the inventory.
type row struct {
	// ref is where the row is in its file: "line 4" (CSV) or "item 3" (YAML).
	ref   string
	cells map[string]string
}

// Inventory converts an inventory of machines, CSV with a header row or YAML with a list of
// rows, into Machines and (unless opts.NoGroups) one Group per group named. A file named *.csv is
// CSV and *.yaml or *.yml is YAML; any other (stdin) is YAML when its first line that is not
// blank or a comment starts a list, CSV otherwise.
func Inventory(in Input, opts Options) (*Result, error) {
	inv := &inventory{in: in, opts: opts, names: map[[2]string]string{}, groups: map[[2]string]*groupRows{}}
	data := bytes.TrimPrefix(in.Data, []byte("\xef\xbb\xbf")) // spreadsheets start CSV with a BOM
	if isYAML(in.Name, data) {
		inv.readYAML(data)
	} else {
		inv.readCSV(data)
	}
	if len(inv.unusedMAC) > 0 {
		inv.p.warnf("%s: mac is not used where bmc is ipmi or redfish (the BMC powers the machine on): %s",
			in.Name, strings.Join(inv.unusedMAC, ", "))
	}
	if !opts.NoGroups {
		inv.buildGroups()
	}
	return inv.p.finish(&inv.res)
}

type inventory struct {
	in   Input
	opts Options
	p    problems
	res  Result
	// names maps namespace and name of every machine to the row that named it first.
	names map[[2]string]string
	// groups holds the machines of each group by namespace and name.
	groups    map[[2]string]*groupRows
	unusedMAC []string
}

// groupRows are the machines of one group and the BMC kind and credentials of each.
type groupRows struct {
	machines []*infrav1.Machine
	bmc      []string
	creds    []string
}

func isYAML(name string, data []byte) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		return false
	case ".yaml", ".yml":
		return true
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || line == "---" {
			continue
		}
		return strings.HasPrefix(line, "-") || strings.HasPrefix(line, "[")
	}
	return false
}

// readCSV converts the rows of a CSV inventory.
func (inv *inventory) readCSV(data []byte) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.Comment = '#'
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		inv.p.errorf("%s: no header row (%s, ...)", inv.in.Name, strings.Join(requiredColumns, ","))
		return
	}
	if err != nil {
		inv.csvError(err)
		return
	}
	headerLine, _ := r.FieldPos(0)
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
	}
	if !inv.checkHeader(fmt.Sprintf("%s line %d", inv.in.Name, headerLine), header) {
		return
	}
	rows := 0
	for {
		record, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			inv.csvError(err)
			return
		}
		line, _ := r.FieldPos(0)
		ref := fmt.Sprintf("line %d", line)
		if len(record) != len(header) {
			inv.p.errorf("%s %s: %d cells, but the header has %d columns", inv.in.Name, ref, len(record), len(header))
			continue
		}
		cells := map[string]string{}
		blank := true
		for i, c := range record {
			cells[header[i]] = strings.TrimSpace(c)
			blank = blank && cells[header[i]] == ""
		}
		// Spreadsheets export empty rows as a line of commas.
		if !blank {
			inv.row(row{ref: ref, cells: cells})
			rows++
		}
	}
	if rows == 0 && len(inv.p.errs) == 0 {
		inv.p.errorf("%s: no machines", inv.in.Name)
	}
}

func (inv *inventory) csvError(err error) {
	if pe, ok := errors.AsType[*csv.ParseError](err); ok {
		inv.p.errorf("%s line %d: %v", inv.in.Name, pe.Line, pe.Err)
		return
	}
	inv.p.errorf("%s: %v", inv.in.Name, err)
}

// checkHeader reports unknown, repeated and missing columns.
func (inv *inventory) checkHeader(where string, header []string) bool {
	ok := true
	seen := map[string]bool{}
	for _, h := range header {
		switch {
		case !isColumn(h):
			inv.p.errorf("%s: unknown column %q (the columns are %s)", where, h, strings.Join(columns, ", "))
			ok = false
		case seen[h]:
			inv.p.errorf("%s: column %q appears twice", where, h)
			ok = false
		}
		seen[h] = true
	}
	for _, c := range requiredColumns {
		if !seen[c] {
			inv.p.errorf("%s: no column %q (%s are required)", where, c, requiredList())
			ok = false
		}
	}
	return ok
}

func isColumn(name string) bool { return slices.Contains(columns, name) }

func requiredList() string {
	return strings.Join(requiredColumns[:len(requiredColumns)-1], ", ") + " and " + requiredColumns[len(requiredColumns)-1]
}

// readYAML converts the rows of a YAML inventory.
func (inv *inventory) readYAML(data []byte) {
	raw, err := yaml.YAMLToJSON(data)
	if err != nil {
		inv.p.errorf("%s: %v", inv.in.Name, err)
		return
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		inv.p.errorf("%s: %v", inv.in.Name, err)
		return
	}
	if doc == nil {
		inv.p.errorf("%s: no machines", inv.in.Name)
		return
	}
	items, ok := doc.([]any)
	if !ok {
		inv.p.errorf("%s: want a list of rows, one map per machine (- name: ...)", inv.in.Name)
		return
	}
	if len(items) == 0 {
		inv.p.errorf("%s: no machines", inv.in.Name)
	}
	for i, item := range items {
		ref := fmt.Sprintf("item %d", i+1)
		where := inv.in.Name + " " + ref
		m, ok := item.(map[string]any)
		if !ok {
			inv.p.errorf("%s: want a map of column to value, got %s", where, describe(item))
			continue
		}
		cells := map[string]string{}
		good := true
		for _, k := range slices.Sorted(maps.Keys(m)) {
			s, ok := inv.yamlCell(where, k, m[k])
			good = good && ok
			cells[k] = s
		}
		// A row with a value that could not be read is not checked further: its other
		// messages would be about the unread value.
		if good {
			inv.row(row{ref: ref, cells: cells})
		}
	}
}

// yamlCell turns one value of a YAML row into the text a CSV cell would hold. No column takes a
// number, and only online a boolean: YAML reads an unquoted 012 as 10 and an unquoted "no" as
// false, so such values must be quoted to be read as written.
func (inv *inventory) yamlCell(where, key string, v any) (string, bool) {
	if !isColumn(key) {
		inv.p.errorf("%s: unknown column %q (the columns are %s)", where, key, strings.Join(columns, ", "))
		return "", false
	}
	switch v := v.(type) {
	case nil:
		return "", true
	case string:
		return strings.TrimSpace(v), true
	case bool:
		if key == colOnline {
			return fmt.Sprint(v), true
		}
		inv.p.errorf("%s: %s: got a boolean (YAML reads unquoted yes, no, on, off, true and false so): quote the value", where, key)
	case json.Number:
		inv.p.errorf("%s: %s: got the number %s: quote the value", where, key, v)
	default:
		inv.p.errorf("%s: %s: want a single value, got %s", where, key, describe(v))
	}
	return "", false
}

// row converts one row into a Machine.
func (inv *inventory) row(r row) {
	where := inv.in.Name + " " + r.ref
	errs := len(inv.p.errs)
	fail := func(format string, args ...any) { inv.p.errorf("%s: %s", where, fmt.Sprintf(format, args...)) }
	c := r.cells

	name, group, bmc := c[colName], c[colGroup], c[colBMC]
	if name == "" {
		fail("missing %s", colName)
	} else if why := checkObjectName(name); why != "" {
		fail("name %q is not a valid object name: %s", name, why)
	}
	if group == "" {
		fail("missing %s", colGroup)
	} else if why := checkObjectName(group); why != "" {
		fail("group %q is not a valid Group name: %s", group, why)
	}
	namespace := c[colNamespace]
	if why := checkNamespace(namespace); namespace != "" && why != "" {
		fail("namespace %q is not a valid namespace: %s", namespace, why)
	}
	if inv.opts.Namespace != "" {
		namespace = inv.opts.Namespace
	}
	m := &infrav1.Machine{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	m.Spec.Group = group

	switch online := strings.ToLower(c[colOnline]); online {
	case "", "false":
	case "true":
		m.Spec.Online = true
	default:
		fail("online %q is not true or false", c[colOnline])
	}
	if k8sName := c[colKubernetesNodeName]; k8sName != "" && k8sName != name {
		if why := checkObjectName(k8sName); why != "" {
			fail("kubernetesNodeName %q is not a valid Node name: %s", k8sName, why)
		}
		m.Spec.KubernetesNodeName = k8sName
	}

	address, creds, mac := c[colAddress], c[colCredentials], c[colMAC]
	switch bmc {
	case bmcIPMI, bmcRedfish:
		m.Spec.BMC = inv.bmc(fail, bmc, address, creds)
		if mac != "" {
			inv.unusedMAC = append(inv.unusedMAC, r.ref)
		}
	case bmcNone:
		switch {
		case mac == "":
			fail("bmc none needs mac (Wake-on-LAN powers the machine on)")
		case !macPattern.MatchString(mac):
			fail("mac %q is not a MAC address (six hex byte pairs separated by : or by -, the same throughout, e.g. aa:bb:cc:dd:ee:ff)", mac)
		}
		if address != "" {
			fail("bmc none takes no address: address and credentials belong to a BMC")
		}
		if creds != "" {
			fail("bmc none takes no credentials: address and credentials belong to a BMC")
		}
		m.Spec.Power = &infrav1.PowerSpec{Start: &infrav1.PowerDriver{WakeOnLAN: &infrav1.WakeOnLANDriver{MAC: mac}}}
	case "":
		fail("missing bmc (%s, %s or %s)", bmcIPMI, bmcRedfish, bmcNone)
	default:
		fail("bmc %q is not %s, %s or %s", bmc, bmcIPMI, bmcRedfish, bmcNone)
	}

	if stop := inv.stop(fail, c); stop != nil {
		if m.Spec.Power == nil {
			m.Spec.Power = &infrav1.PowerSpec{}
		}
		m.Spec.Power.Stop = stop
	} else if bmc == bmcNone && c[colStop] == "" {
		fail("machine %q has no way to power off: bmc none gives it Wake-on-LAN, which only powers on; add stop (ssh:<user>@<address>) with sshSecret and sshHostKey, or a BMC", name)
	}

	if name != "" {
		key := [2]string{namespace, name}
		if first, dup := inv.names[key]; dup {
			fail("name %q is already used (%s)", name, first)
		} else {
			inv.names[key] = r.ref
		}
	}
	if len(inv.p.errs) > errs {
		return
	}
	inv.res.Machines = append(inv.res.Machines, m)
	gk := [2]string{namespace, group}
	g := inv.groups[gk]
	if g == nil {
		g = &groupRows{}
		inv.groups[gk] = g
	}
	g.machines = append(g.machines, m)
	g.bmc = append(g.bmc, bmc)
	g.creds = append(g.creds, creds)
}

// bmc builds spec.bmc for an ipmi or redfish row.
func (inv *inventory) bmc(fail func(string, ...any), kind, address, creds string) *infrav1.BMC {
	var ref *infrav1.SecretReference
	switch why := checkObjectName(creds); {
	case creds == "":
		fail("bmc %s needs credentials (the name of a Secret with username and password)", kind)
	case why != "":
		fail("credentials %q is not a valid Secret name: %s", creds, why)
	default:
		ref = &infrav1.SecretReference{Name: creds}
	}
	if kind == bmcIPMI {
		switch {
		case address == "":
			fail("bmc ipmi needs address (the BMC's host name or IP address)")
		case !isHost(address):
			fail("address %q is not a host name or IP address: bmc ipmi takes the BMC's address (a URL is for redfish)", address)
		}
		return &infrav1.BMC{IPMI: &infrav1.IPMIDriver{Address: address, CredentialsSecretRef: ref}}
	}
	switch {
	case address == "":
		fail("bmc redfish needs address (the Redfish endpoint, e.g. https://10.0.0.5)")
	case !isHTTPURL(address):
		fail("address %q is not an http(s) URL: bmc redfish takes the Redfish endpoint, e.g. https://10.0.0.5", address)
	case strings.HasPrefix(strings.ToLower(address), "http://"):
		// Not set by the import: sending credentials in clear is a choice to make knowingly.
		inv.p.warnf("bmc redfish at %s is plain http: the driver refuses to send credentials there unless spec.bmc.redfish.allowPlainHTTP is set (see docs/drivers/redfish.md)", address)
	}
	return &infrav1.BMC{Redfish: &infrav1.RedfishDriver{Endpoint: address, CredentialsSecretRef: ref}}
}

// stop builds power.stop from the stop, sshSecret and sshHostKey columns, or returns nil.
func (inv *inventory) stop(fail func(string, ...any), c map[string]string) *infrav1.PowerDriver {
	stop, secret, hostKey := c[colStop], c[colSSHSecret], c[colSSHHostKey]
	if stop == "" {
		if secret != "" {
			fail("sshSecret is set but stop is empty")
		}
		if hostKey != "" {
			fail("sshHostKey is set but stop is empty")
		}
		return nil
	}
	user, host, ok := strings.Cut(strings.TrimPrefix(stop, sshStopPrefix), "@")
	switch {
	case !strings.HasPrefix(stop, sshStopPrefix) || !ok || user == "" || host == "" || len(user) > maxSSHUser:
		fail("stop %q is not ssh:<user>@<address>", stop)
	case !isHost(host):
		fail("stop %q: %q is not a host name or IP address", stop, host)
	}
	switch why := checkObjectName(secret); {
	case secret == "":
		fail("stop needs sshSecret (a kubernetes.io/ssh-auth Secret with the private key)")
	case why != "":
		fail("sshSecret %q is not a valid Secret name: %s", secret, why)
	}
	switch {
	case hostKey == "":
		fail(`stop needs sshHostKey (the machine's public host key, "ssh-ed25519 AAAA...")`)
	case checkHostKey(hostKey) != "":
		fail("sshHostKey is %s", checkHostKey(hostKey))
	}
	return &infrav1.PowerDriver{SSH: &infrav1.SSHDriver{
		Address:      host,
		User:         user,
		KeySecretRef: infrav1.SSHKeySecretReference{Name: secret},
		HostKey:      hostKey,
	}}
}

// buildGroups makes one Group per group named. When every machine of a group has the same kind
// of BMC and the same credentials Secret, the Secret is named once, in the Group's
// machineDefaults, instead of in every Machine.
func (inv *inventory) buildGroups() {
	for key, rows := range inv.groups {
		g := &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: key[0], Name: key[1]}}
		if kind, creds, shared := sharedCredentials(rows); shared {
			ref := &infrav1.SecretReference{Name: creds}
			d := &infrav1.BMC{}
			if kind == bmcIPMI {
				d.IPMI = &infrav1.IPMIDriver{CredentialsSecretRef: ref}
			} else {
				d.Redfish = &infrav1.RedfishDriver{CredentialsSecretRef: ref}
			}
			g.Spec.MachineDefaults = &infrav1.MachineDefaults{BMC: d}
			for _, m := range rows.machines {
				if m.Spec.BMC.IPMI != nil {
					m.Spec.BMC.IPMI.CredentialsSecretRef = nil
				} else {
					m.Spec.BMC.Redfish.CredentialsSecretRef = nil
				}
			}
		}
		inv.res.Groups = append(inv.res.Groups, g)
	}
}

func sharedCredentials(rows *groupRows) (kind, creds string, shared bool) {
	kind, creds = rows.bmc[0], rows.creds[0]
	if kind != bmcIPMI && kind != bmcRedfish {
		return "", "", false
	}
	for i := range rows.bmc {
		if rows.bmc[i] != kind || rows.creds[i] != creds {
			return "", "", false
		}
	}
	return kind, creds, true
}
