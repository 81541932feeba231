package importer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// UpstreamAPIVersion is the API of the project this one replaces.
const UpstreamAPIVersion = "infra.homecluster.dev/v1alpha1"

// upstreamGroupLabel is the label by which an upstream Node names its Group.
const upstreamGroupLabel = "group"

// upstreamJobTimeout is how long upstream waited for a power Job before giving up on it. Our
// Job driver's deadline is the slot's timeout, 30s by default: too short for a script written
// for upstream, which may pull an image and wait for a machine.
const upstreamJobTimeout = 5 * time.Minute

// Upstream converts infra.homecluster.dev/v1alpha1 Group and Node objects, in multi-document
// YAML streams, into Groups and Machines. Lists (kind List, GroupList, NodeList) are read item by
// item; objects of any other kind are skipped and named in Result.Skipped.
func Upstream(inputs []Input, opts Options) (*Result, error) {
	u := &upstream{opts: opts, seen: map[objectKey]string{}}
	for _, in := range inputs {
		u.read(in)
	}
	u.checkGroups()
	return u.p.finish(&u.res)
}

type objectKey struct{ kind, namespace, name string }

type upstream struct {
	opts Options
	p    problems
	res  Result
	// seen maps every converted object to where it was, to refuse a second one of the same name.
	seen map[objectKey]string
	// machineGroups remembers which Group each Machine names, and who named it, for checkGroups.
	machineGroups []machineGroup
}

type machineGroup struct {
	subject, namespace, group string
}

// read converts every document of one input.
func (u *upstream) read(in Input) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(in.Data)))
	n := 0
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			u.p.errorf("%s: %v", in.Name, err)
			return
		}
		raw, err := yaml.YAMLToJSON(doc)
		if err == nil && string(bytes.TrimSpace(raw)) == "null" {
			continue // only comments, or nothing between two separators: not counted
		}
		n++
		where := fmt.Sprintf("%s document %d", in.Name, n)
		if err != nil {
			u.p.errorf("%s: %v", where, err)
			continue
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			u.p.errorf("%s: %v", where, err)
			continue
		}
		u.object(where, v)
	}
}

// object converts one decoded document (or list item) found at where.
func (u *upstream) object(where string, v any) {
	m, ok := v.(map[string]any)
	apiVersion, _ := m["apiVersion"].(string)
	kind, _ := m["kind"].(string)
	if !ok || apiVersion == "" || kind == "" {
		u.p.errorf("%s: not a Kubernetes object (a map with apiVersion and kind)", where)
		return
	}
	if isList(apiVersion, kind) {
		items, ok := m["items"].([]any)
		if !ok && m["items"] != nil {
			u.p.errorf("%s: %s items: want a list, got %s", where, kind, describe(m["items"]))
		}
		for i, item := range items {
			u.object(fmt.Sprintf("%s item %d", where, i+1), item)
		}
		return
	}
	meta, _ := m["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	if apiVersion != UpstreamAPIVersion || (kind != "Group" && kind != "Node") {
		u.res.Skipped = append(u.res.Skipped, fmt.Sprintf("%s %s (%s): not an %s Group or Node", kind, orNoName(name), apiVersion, UpstreamAPIVersion))
		return
	}
	lower := strings.ToLower(kind)
	if name == "" {
		u.p.errorf("%s: %s without metadata.name", where, lower)
		return
	}
	namespace, _ := meta["namespace"].(string)
	subject := lower + " " + name
	if namespace != "" {
		subject = lower + " " + namespace + "/" + name
	}
	if why := checkObjectName(name); why != "" {
		u.p.errorf("%s: metadata.name: %q is not a valid name: %s", subject, name, why)
		return
	}
	if u.opts.Namespace != "" {
		namespace = u.opts.Namespace
	}
	key := objectKey{kind, namespace, name}
	if first, dup := u.seen[key]; dup {
		in := ""
		if namespace != "" {
			in = fmt.Sprintf(" in namespace %s", namespace)
		}
		u.p.errorf("%s: defined twice%s (%s, %s)", subject, in, first, where)
		return
	}
	u.seen[key] = where

	labels := u.labels(subject, meta)
	spec := newObject(&u.p, subject, kind, "spec", nil)
	if s, ok := m["spec"].(map[string]any); ok {
		spec.m = s
	} else if m["spec"] != nil {
		u.p.errorf("%s: spec: want a map, got %s", subject, describe(m["spec"]))
		return
	}
	objMeta := metav1.ObjectMeta{Name: name, Namespace: namespace}
	if kind == "Group" {
		u.warnLabels(subject, labels, "")
		u.group(spec, objMeta)
	} else {
		u.warnLabels(subject, labels, upstreamGroupLabel)
		u.node(spec, objMeta, labels)
	}
	spec.warnUnread()
}

func isList(apiVersion, kind string) bool {
	return (apiVersion == "v1" && kind == "List") ||
		(apiVersion == UpstreamAPIVersion && (kind == "GroupList" || kind == "NodeList"))
}

func orNoName(name string) string {
	if name == "" {
		return "(no name)"
	}
	return name
}

// labels returns the object's labels; values that are not strings are reported.
func (u *upstream) labels(subject string, meta map[string]any) map[string]string {
	raw, _ := meta["labels"].(map[string]any)
	labels := map[string]string{}
	for k, v := range raw {
		s, ok := v.(string)
		if !ok {
			u.p.errorf("%s: metadata.labels.%s: want a string, got %s", subject, k, describe(v))
			continue
		}
		labels[k] = s
	}
	return labels
}

// warnLabels names the labels that are not carried over: the objects built have no labels.
func (u *upstream) warnLabels(subject string, labels map[string]string, used string) {
	var dropped []string
	for k := range labels {
		if k != used {
			dropped = append(dropped, k)
		}
	}
	if len(dropped) == 0 {
		return
	}
	sort.Strings(dropped)
	u.p.warnf("%s: metadata.labels %s not carried over", subject, strings.Join(dropped, ", "))
}

// group converts an upstream Group. Its fields and ours under spec.autoscalingOptions have the
// same names.
func (u *upstream) group(spec *object, meta metav1.ObjectMeta) {
	var opts infrav1.AutoscalingOptions
	set := false
	for _, f := range []struct {
		key string
		dst **string
	}{
		{"scaleDownUtilizationThreshold", &opts.ScaleDownUtilizationThreshold},
		{"scaleDownGpuUtilizationThreshold", &opts.ScaleDownGPUUtilizationThreshold},
	} {
		s, ok := spec.str(f.key)
		switch {
		case !ok:
		case s == "":
			spec.warnf(f.key, "empty: upstream sent cluster-autoscaler 0 for it; the Group leaves it unset, so cluster-autoscaler's global value applies")
		case !thresholdPattern.MatchString(s):
			spec.errorf(f.key, "%q is not a fraction from 0 to 1 such as \"0.5\" (the Group's pattern is %s)", s, thresholdPattern)
		default:
			*f.dst = &s
			set = true
		}
	}
	for _, f := range []struct {
		key string
		dst **metav1.Duration
	}{
		{"scaleDownUnneededTime", &opts.ScaleDownUnneededTime},
		{"scaleDownUnreadyTime", &opts.ScaleDownUnreadyTime},
		{"maxNodeProvisionTime", &opts.MaxNodeProvisionTime},
	} {
		if d := spec.duration(f.key); d != nil {
			*f.dst = d
			set = true
		}
	}
	for _, f := range []struct {
		key string
		dst **bool
	}{
		{"zeroOrMaxNodeScaling", &opts.ZeroOrMaxNodeScaling},
		{"ignoreDaemonSetsUtilization", &opts.IgnoreDaemonSetsUtilization},
	} {
		// false is upstream's zero value, written because the field was required: left unset,
		// the group follows cluster-autoscaler's global setting, which is false unless changed.
		if b, ok := spec.boolean(f.key); ok && b {
			*f.dst = &b
			set = true
		}
	}
	g := &infrav1.Group{ObjectMeta: meta}
	if set {
		g.Spec.AutoscalingOptions = &opts
	}
	u.res.Groups = append(u.res.Groups, g)
}

// duration reads a duration; 0s, upstream's way of saying "not set", is nil.
func (o *object) duration(key string) *metav1.Duration {
	s, ok := o.str(key)
	if !ok {
		return nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		o.errorf(key, "%q is not a duration such as 10m or 90s", s)
		return nil
	case d < 0:
		o.errorf(key, "%q is not a positive duration", s)
		return nil
	case d == 0:
		return nil
	}
	return &metav1.Duration{Duration: d}
}

func (u *upstream) node(spec *object, meta metav1.ObjectMeta, labels map[string]string) {
	m := &infrav1.Machine{ObjectMeta: meta}
	group, ok := labels[upstreamGroupLabel]
	switch {
	case !ok || group == "":
		spec.p.errorf("%s: metadata.labels.%s: missing: upstream's Group membership label is the Machine's spec.group", spec.subject, upstreamGroupLabel)
	case checkObjectName(group) != "":
		spec.p.errorf("%s: metadata.labels.%s: %q is not a valid Group name: %s", spec.subject, upstreamGroupLabel, group, checkObjectName(group))
	default:
		m.Spec.Group = group
		u.machineGroups = append(u.machineGroups, machineGroup{spec.subject, meta.Namespace, group})
	}
	if spec.m == nil {
		spec.errorf("", "missing")
		return
	}
	m.Spec.Online = u.online(spec)
	if k8sName, ok := spec.str("kubernetesNodeName"); ok && k8sName != meta.Name {
		if len(k8sName) > validation.DNS1123SubdomainMaxLength {
			spec.errorf("kubernetesNodeName", "longer than %d characters", validation.DNS1123SubdomainMaxLength)
		}
		m.Spec.KubernetesNodeName = k8sName
	}
	start := u.job(spec, "startupPodSpec", "the machine powers on")
	stop := u.job(spec, "shutdownPodSpec", "the machine powers off")
	if start != nil && stop != nil {
		m.Spec.Power = &infrav1.PowerSpec{
			Start: &infrav1.PowerDriver{Timeout: &metav1.Duration{Duration: upstreamJobTimeout}, Job: start},
			Stop:  &infrav1.PowerDriver{Timeout: &metav1.Duration{Duration: upstreamJobTimeout}, Job: stop},
		}
	}
	m.Spec.Pricing = u.pricing(spec)
	m.Spec.TaintsToRemove = u.taintKeys(spec)
	u.res.Machines = append(u.res.Machines, m)
}

// online reads spec.powerState. Upstream's own decoder took true and false for on and off, and
// YAML 1.1 reads an unquoted on or off as a boolean, so both spellings are accepted.
func (u *upstream) online(spec *object) bool {
	v, ok := spec.value("powerState")
	if !ok {
		spec.errorf("powerState", `missing: want "on" or "off"`)
		return false
	}
	switch v {
	case "on", "true", true:
		return true
	case "off", "false", false:
		return false
	}
	spec.errorf("powerState", `%s is not "on" or "off"`, describe(v))
	return false
}

// job converts a MinimalPodSpec into a Job driver.
func (u *upstream) job(spec *object, key, does string) *infrav1.JobDriver {
	o := spec.child(key)
	if o == nil {
		if _, present := spec.m[key]; !present || spec.m[key] == nil {
			spec.errorf(key, "missing: it is how %s", does)
		}
		return nil
	}
	errs := len(u.p.errs)
	j := &infrav1.JobDriver{}
	if image, _ := o.str("image"); image != "" {
		j.Image = image
	} else {
		o.errorf("image", "missing")
	}
	j.Command = o.strs("command")
	j.Args = o.strs("args")
	u.volumes(o, j)
	if sa, ok := o.str("serviceAccount"); ok && sa != "" {
		j.ServiceAccountName = sa
	}
	if ttl, ok := o.int32Value("ttlSecondsAfterFinished"); ok {
		if ttl < 0 {
			o.errorf("ttlSecondsAfterFinished", "%d is negative", ttl)
		}
		j.TTLSecondsAfterFinished = &ttl
	}
	if len(u.p.errs) > errs {
		return nil
	}
	return j
}

// volumes converts upstream's volumes (a Secret or a ConfigMap mounted read-only) into Job
// volumes and their mounts.
func (u *upstream) volumes(o *object, j *infrav1.JobDriver) {
	vols := o.children("volumes")
	if len(vols) > maxJobVolumes {
		o.errorf("volumes", "%d volumes, at most %d", len(vols), maxJobVolumes)
	}
	names := map[string]bool{}
	for _, v := range vols {
		name, _ := v.str("name")
		mountPath, _ := v.str("mountPath")
		secret, _ := v.str("secretName")
		configMap, _ := v.str("configMapName")
		switch why := validation.IsDNS1123Label(name); {
		case name == "":
			v.errorf("name", "missing")
		case len(why) > 0:
			v.errorf("name", "%q is not a valid volume name: %s", name, why[0])
		case names[name]:
			v.errorf("name", "%q names two volumes", name)
		}
		names[name] = true
		if mountPath == "" {
			v.errorf("mountPath", "missing")
		}
		vol := infrav1.JobVolume{Name: name}
		switch {
		case (secret == "") == (configMap == ""):
			v.errorf("", "set exactly one of secretName or configMapName")
		case secret != "":
			vol.Secret = &corev1.SecretVolumeSource{SecretName: secret}
		default:
			vol.ConfigMap = &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: configMap}}
		}
		j.Volumes = append(j.Volumes, vol)
		j.VolumeMounts = append(j.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: mountPath, ReadOnly: true})
	}
}

func (u *upstream) pricing(spec *object) *infrav1.Pricing {
	o := spec.child("pricing")
	if o == nil {
		return nil
	}
	if pod, _ := o.str("podRate"); pod != "" {
		o.warnf("podRate", "%q dropped: upstream never used it, and a Machine has an hourly rate only", pod)
	}
	rate, ok := o.str("hourlyRate")
	if !ok || rate == "" {
		return nil
	}
	q, err := resource.ParseQuantity(rate)
	if err != nil || q.Sign() < 0 {
		o.errorf("hourlyRate", "%q is not a price such as \"0.12\"", rate)
		return nil
	}
	return &infrav1.Pricing{HourlyRate: q}
}

// taintKeys keeps the keys of upstream's taintsToRemove: upstream matched taints by key only.
func (u *upstream) taintKeys(spec *object) []string {
	var keys []string
	for _, t := range spec.children("taintsToRemove") {
		// A taint's value, effect and timeAdded never mattered upstream.
		t.read["value"], t.read["effect"], t.read["timeAdded"] = true, true, true
		key, _ := t.str("key")
		if key == "" {
			t.errorf("key", "missing")
			continue
		}
		if !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	if len(keys) > maxTaintsToRemove {
		spec.errorf("taintsToRemove", "%d taint keys, at most %d", len(keys), maxTaintsToRemove)
	}
	return keys
}

// checkGroups warns about Machines whose Group is not part of the import: it has to exist
// before the Machine is any use.
func (u *upstream) checkGroups() {
	have := map[[2]string]bool{}
	for _, g := range u.res.Groups {
		have[[2]string{g.Namespace, g.Name}] = true
	}
	for _, mg := range u.machineGroups {
		if !have[[2]string{mg.namespace, mg.group}] {
			u.p.warnf("%s: Group %q is not in the input: create it in the Machine's namespace", mg.subject, mg.group)
		}
	}
}
