package sim

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// gracefulMargin is added to the longest shutdown when a Machine's graceful shutdown window is
// written, so the driver waits for a shutdown that takes as long as configured.
const gracefulMargin = 5 * time.Second

// Objects are the cluster objects that describe the simulated homelab to homelab-autoscaler.
type Objects struct {
	Group    *infrav1.Group
	Secrets  []*corev1.Secret
	Machines []*infrav1.Machine
}

// All lists the objects in the order they should be created: the Group, the Secrets, the Machines.
func (o Objects) All() []client.Object {
	all := []client.Object{o.Group}
	for _, s := range o.Secrets {
		all = append(all, s)
	}
	for _, m := range o.Machines {
		all = append(all, m)
	}
	return all
}

// Objects returns the Group, one credentials Secret per machine (with the label the drivers
// require), and one Machine per machine, offline: its spec.bmc points at the machine's BMC or,
// for machines behind smart plugs, its spec.power switches the plug on and off and reads its
// status and power draw. Call it after Start: the endpoints are known then.
func (s *Sim) Objects() Objects {
	cfg := s.cfg
	labels := map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64"}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	maxSize := int32(len(s.machines)) //nolint:gosec // bounded by the flag's validation
	o := Objects{Group: &infrav1.Group{
		TypeMeta:   metav1.TypeMeta{APIVersion: infrav1.GroupVersion.String(), Kind: "Group"},
		ObjectMeta: metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.Group},
		Spec: infrav1.GroupSpec{
			MinSize: 0,
			MaxSize: &maxSize,
			Template: &infrav1.NodeTemplate{
				Labels: labels, Capacity: cfg.Capacity.DeepCopy(), Allocatable: cfg.Capacity.DeepCopy(),
			},
		},
	}}
	if cfg.NodeBootTimeout > 0 {
		o.Group.Spec.MachineDefaults = &infrav1.MachineDefaults{BootTimeout: &metav1.Duration{Duration: cfg.NodeBootTimeout}}
	}
	for _, m := range s.machines {
		secret := &corev1.Secret{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{
				Namespace: cfg.Namespace, Name: cfg.secretName(m.Index),
				Labels: map[string]string{infrav1.LabelCredentials: "true"},
			},
			Type: corev1.SecretTypeBasicAuth,
			Data: map[string][]byte{
				corev1.BasicAuthUsernameKey: []byte(m.Username), corev1.BasicAuthPasswordKey: []byte(m.Password),
			},
		}
		spec := infrav1.MachineSpec{Group: cfg.Group, Online: false}
		if cfg.Protocol == ProtocolShelly {
			// The http driver sends every key of the Secret as a header.
			secret.Type = corev1.SecretTypeOpaque
			secret.Data = map[string][]byte{"Authorization": []byte(m.PlugAuthorization())}
			spec.Power = s.plugPower(m)
		} else {
			spec.BMC = s.bmc(m)
		}
		if cfg.WakeVia != "" {
			host, port := s.wakeTarget()
			p, _ := strconv.Atoi(port)
			if spec.Power == nil {
				spec.Power = &infrav1.PowerSpec{}
			}
			spec.Power.Start = &infrav1.PowerDriver{WakeOnLAN: &infrav1.WakeOnLANDriver{
				MAC: MAC(m.Index).String(), BroadcastAddress: host, Port: int32(p), Via: cfg.WakeVia, //nolint:gosec // a UDP port
			}}
		}
		o.Secrets = append(o.Secrets, secret)
		o.Machines = append(o.Machines, &infrav1.Machine{
			TypeMeta:   metav1.TypeMeta{APIVersion: infrav1.GroupVersion.String(), Kind: "Machine"},
			ObjectMeta: metav1.ObjectMeta{Namespace: cfg.Namespace, Name: m.Name},
			Spec:       spec,
		})
	}
	return o
}

// PlugPoweredOnPattern is what a Machine behind a simulated plug takes for "on" in the plug's
// Switch.GetStatus answer: the relay is on.
const PlugPoweredOnPattern = `"output":\s*true`

// plugPower switches the machine's plug with Switch.Set and reads its relay and power draw with
// Switch.GetStatus, each one GET with the plug's token header.
func (s *Sim) plugPower(m *Machine) *infrav1.PowerSpec {
	headers := &infrav1.SecretReference{Name: s.cfg.secretName(m.Index)}
	set := func(on bool) *infrav1.PowerDriver {
		return &infrav1.PowerDriver{HTTP: &infrav1.HTTPDriver{
			URL: m.Endpoint() + plugSet + "?" + plugQuery(on), Method: http.MethodGet, HeadersSecretRef: headers,
		}}
	}
	return &infrav1.PowerSpec{
		Start: set(true),
		Stop:  set(false),
		Status: &infrav1.PowerStatusSource{HTTP: &infrav1.HTTPDriver{
			URL: m.Endpoint() + plugGetStatus + "?id=0", Method: http.MethodGet, HeadersSecretRef: headers,
			PoweredOnPattern: PlugPoweredOnPattern,
			Watts:            &infrav1.HTTPWatts{Preset: infrav1.WattsShellyGen2},
		}},
	}
}

// maxCallTimeout is the API's bound on one driver call (bmc.timeout).
const maxCallTimeout = time.Hour

// bmc points the machine at its simulated BMC. The graceful shutdown window covers the longest
// shutdown the simulator plays, so the driver sees the machine go off by itself and sends no
// ForceOff; the call timeout leaves room for that window. Both stay within the API's bound on a
// driver call (1h): a simulated shutdown longer than half of it ends in a ForceOff.
func (s *Sim) bmc(m *Machine) *infrav1.BMC {
	graceful := &metav1.Duration{Duration: min(s.cfg.ShutdownDelay+s.cfg.ShutdownJitter+gracefulMargin, maxCallTimeout/2)}
	secret := &infrav1.SecretReference{Name: s.cfg.secretName(m.Index)}
	endpoint := m.Endpoint()
	b := &infrav1.BMC{Timeout: &metav1.Duration{Duration: min(max(30*time.Second, 2*graceful.Duration), maxCallTimeout)}}
	switch s.cfg.Protocol {
	case ProtocolIPMI:
		host, portText, _ := net.SplitHostPort(endpoint)
		port, _ := strconv.Atoi(portText)
		b.IPMI = &infrav1.IPMIDriver{Address: host, Port: int32(port), CredentialsSecretRef: secret, GracefulShutdownTimeout: graceful} //nolint:gosec // a port
	default:
		// The simulated BMCs serve plain HTTP, on loopback unless --bmc-address says otherwise.
		b.Redfish = &infrav1.RedfishDriver{Endpoint: endpoint, CredentialsSecretRef: secret, GracefulShutdownTimeout: graceful, AllowPlainHTTP: true}
	}
	return b
}

// WriteManifests writes objs as a multi-document YAML stream, without the fields the apiserver
// owns (status, creationTimestamp), so that `kubectl create -f` takes it as it is.
func WriteManifests(w io.Writer, objs []client.Object) error {
	var buf bytes.Buffer
	for i, obj := range objs {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return fmt.Errorf("converting %s: %w", obj.GetName(), err)
		}
		delete(u, "status")
		if meta, ok := u["metadata"].(map[string]any); ok {
			delete(meta, "creationTimestamp")
		}
		doc, err := yaml.Marshal(u)
		if err != nil {
			return fmt.Errorf("writing %s as YAML: %w", obj.GetName(), err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(doc)
	}
	_, err := w.Write(buf.Bytes())
	return err
}
