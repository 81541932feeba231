package sim

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// gracefulMargin is added to the longest shutdown when a Node's graceful shutdown window is
// written, so the driver waits for a shutdown that takes as long as configured.
const gracefulMargin = 5 * time.Second

// Objects are the cluster objects that describe the simulated homelab to homelab-autoscaler.
type Objects struct {
	Group   *infrav1.Group
	Secrets []*corev1.Secret
	Nodes   []*infrav1.Node
}

// All lists the objects in the order they should be created: the Group, the Secrets, the Nodes.
func (o Objects) All() []client.Object {
	all := []client.Object{o.Group}
	for _, s := range o.Secrets {
		all = append(all, s)
	}
	for _, n := range o.Nodes {
		all = append(all, n)
	}
	return all
}

// Objects returns the Group, one credentials Secret per machine, and one Node per machine whose
// power drivers point at the machine's BMC, desired "off". Call it after Start: the endpoints
// are known then.
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
	for _, m := range s.machines {
		o.Secrets = append(o.Secrets, &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Namespace: cfg.Namespace, Name: cfg.secretName(m.Index)},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{"username": []byte(m.Username), "password": []byte(m.Password)},
		})
		n := &infrav1.Node{
			TypeMeta:   metav1.TypeMeta{APIVersion: infrav1.GroupVersion.String(), Kind: "Node"},
			ObjectMeta: metav1.ObjectMeta{Namespace: cfg.Namespace, Name: m.Name},
			Spec: infrav1.NodeSpec{
				Group:      cfg.Group,
				PowerState: infrav1.PowerOff,
				Power:      s.powerSpec(m),
			},
		}
		if cfg.NodeBootTimeout > 0 {
			n.Spec.BootTimeout = &metav1.Duration{Duration: cfg.NodeBootTimeout}
		}
		o.Nodes = append(o.Nodes, n)
	}
	return o
}

// powerSpec points all three power slots at m's BMC. The stop slot's graceful shutdown window
// covers the longest shutdown the simulator plays, so the driver sees the machine go off by
// itself and sends no ForceOff.
func (s *Sim) powerSpec(m *Machine) infrav1.PowerSpec {
	graceful := s.cfg.ShutdownDelay + s.cfg.ShutdownJitter + gracefulMargin
	stopTimeout := max(30*time.Second, 2*graceful)
	secret := infrav1.SecretReference{Name: s.cfg.secretName(m.Index)}
	endpoint := m.Endpoint()
	action := func(stop bool) infrav1.PowerAction {
		a := infrav1.PowerAction{}
		switch s.cfg.Protocol {
		case ProtocolIPMI:
			host, portText, _ := net.SplitHostPort(endpoint)
			port, _ := strconv.Atoi(portText)
			a.IPMI = &infrav1.IPMIDriver{Address: host, Port: int32(port), CredentialsSecretRef: secret} //nolint:gosec // a port
			if stop {
				a.IPMI.GracefulShutdownTimeout = &metav1.Duration{Duration: graceful}
			}
		default:
			a.Redfish = &infrav1.RedfishDriver{Endpoint: endpoint, CredentialsSecretRef: secret}
			if stop {
				a.Redfish.GracefulShutdownTimeout = &metav1.Duration{Duration: graceful}
			}
		}
		if stop {
			a.Timeout = &metav1.Duration{Duration: stopTimeout}
		}
		return a
	}
	status := action(false)
	return infrav1.PowerSpec{
		Start: action(false),
		Stop:  action(true),
		Status: &infrav1.PowerStatusSource{
			IPMI: status.IPMI, Redfish: status.Redfish,
		},
	}
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
		// sigs.k8s.io/yaml quotes strings that YAML 1.1 reads as booleans, powerState "off"
		// among them.
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
