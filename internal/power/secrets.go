package power

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// SecretReader reads one key of a Secret in a namespace at the moment a driver needs it.
type SecretReader interface {
	SecretValue(ctx context.Context, namespace, name, key string) ([]byte, error)
	SecretData(ctx context.Context, namespace, name string) (map[string][]byte, error)
}

// ClientSecrets reads Secrets through a client. Use an uncached reader (a manager's
// GetAPIReader()): the manager then needs only "get" on Secrets, never list/watch, and keeps no
// credentials in memory.
//
// It returns only Secrets that opt in to being credentials, with the label
// infrav1.LabelCredentials "true", and none of the manager's own namespace unless
// AllowManagerNamespace: the manager may read every Secret of the namespaces it watches, and
// without the opt-in whoever may write a Machine could point a driver at any of them (a
// ServiceAccount token, a TLS key) and have the manager send it to an address of their choosing.
type ClientSecrets struct {
	Reader client.Reader
	// ManagerNamespace is the namespace the manager runs in, whose Secrets (the manager's own
	// certificates and tokens) are refused; empty refuses none.
	ManagerNamespace string
	// AllowManagerNamespace lets the drivers use labelled Secrets of ManagerNamespace.
	AllowManagerNamespace bool
}

// serviceAccountNamespaceFile holds the pod's namespace in a pod that mounts its ServiceAccount's
// token, as the manager's does (it needs the token to reach the apiserver).
const serviceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// ManagerNamespace is the namespace the manager runs in, for ClientSecrets.ManagerNamespace:
// $POD_NAMESPACE, else the namespace of the pod's ServiceAccount, else fallback (the leader
// election namespace of a manager run outside a cluster, or "").
func ManagerNamespace(fallback string) string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile(serviceAccountNamespaceFile); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b))
	}
	return fallback
}

// errSecretNotFound marks the refusal of a Secret that does not exist.
var errSecretNotFound = errors.New("not found")

// SecretData returns all of a Secret's data. A missing Secret, one without the credentials
// label, or one of the manager's namespace is a ClassConfig *Error that names it and never any
// of its content.
func (s ClientSecrets) SecretData(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	if namespace == s.ManagerNamespace && s.ManagerNamespace != "" && !s.AllowManagerNamespace {
		return nil, &Error{Class: ClassConfig, Err: fmt.Errorf("secret %s/%s is in the manager's own namespace, whose Secrets the drivers do not use unless the manager runs with --%s",
			namespace, name, FlagAllowManagerNamespaceSecret)}
	}
	sec := &corev1.Secret{}
	if err := s.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &Error{Class: ClassConfig, Err: fmt.Errorf("secret %s/%s %w", namespace, name, errSecretNotFound)}
		}
		if apierrors.IsForbidden(err) {
			return nil, &Error{Class: ClassConfig, Err: fmt.Errorf("secret %s/%s: reading is forbidden", namespace, name)}
		}
		return nil, &Error{Class: ClassUnreachable, Err: fmt.Errorf("secret %s/%s: %w", namespace, name, err)}
	}
	if sec.Labels[infrav1.LabelCredentials] != "true" {
		return nil, &Error{Class: ClassConfig, Err: fmt.Errorf("secret %s/%s is not labelled %s: \"true\": the drivers use only Secrets with that label",
			namespace, name, infrav1.LabelCredentials)}
	}
	return sec.Data, nil
}

// SecretValue returns one key of a Secret. A missing Secret or key is a ClassConfig *Error that
// names them (never the value).
func (s ClientSecrets) SecretValue(ctx context.Context, namespace, name, key string) ([]byte, error) {
	data, err := s.SecretData(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	v, ok := data[key]
	if !ok {
		return nil, &Error{Class: ClassConfig, Err: fmt.Errorf("secret %s/%s has no key %q", namespace, name, key)}
	}
	return v, nil
}

// ConfigMapReader reads one key of a ConfigMap, for data that is public but configured per Machine
// (a CA bundle).
type ConfigMapReader interface {
	ConfigMapValue(ctx context.Context, namespace, name, key string) ([]byte, error)
}

// ClientConfigMaps reads ConfigMaps through a client. Like ClientSecrets, give it an uncached
// reader, so the manager needs only "get" on ConfigMaps.
type ClientConfigMaps struct {
	Reader client.Reader
}

// ConfigMapValue returns one key of a ConfigMap, from data or binaryData. A missing ConfigMap or
// key is a ClassConfig *Error naming them.
func (c ClientConfigMaps) ConfigMapValue(ctx context.Context, namespace, name, key string) ([]byte, error) {
	cm := &corev1.ConfigMap{}
	if err := c.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &Error{Class: ClassConfig, Err: fmt.Errorf("configmap %s/%s not found", namespace, name)}
		}
		if apierrors.IsForbidden(err) {
			return nil, &Error{Class: ClassConfig, Err: fmt.Errorf("configmap %s/%s: reading is forbidden", namespace, name)}
		}
		return nil, &Error{Class: ClassUnreachable, Err: fmt.Errorf("configmap %s/%s: %w", namespace, name, err)}
	}
	if v, ok := cm.Data[key]; ok {
		return []byte(v), nil
	}
	if v, ok := cm.BinaryData[key]; ok {
		return v, nil
	}
	return nil, &Error{Class: ClassConfig, Err: fmt.Errorf("configmap %s/%s has no key %q", namespace, name, key)}
}
