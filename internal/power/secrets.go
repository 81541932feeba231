package power

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SecretReader reads one key of a Secret in a namespace at the moment a driver needs it.
type SecretReader interface {
	SecretValue(ctx context.Context, namespace, name, key string) ([]byte, error)
	SecretData(ctx context.Context, namespace, name string) (map[string][]byte, error)
}

// ClientSecrets reads Secrets through a client. Use an uncached reader (a manager's
// GetAPIReader()): the manager then needs only "get" on Secrets, never list/watch, and keeps no
// credentials in memory.
type ClientSecrets struct {
	Reader client.Reader
}

// SecretData returns all of a Secret's data. A missing Secret is a ClassConfig *Error naming it.
func (s ClientSecrets) SecretData(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	sec := &corev1.Secret{}
	if err := s.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &Error{Class: ClassConfig, Err: fmt.Errorf("secret %s/%s not found", namespace, name)}
		}
		if apierrors.IsForbidden(err) {
			return nil, &Error{Class: ClassConfig, Err: fmt.Errorf("secret %s/%s: reading is forbidden", namespace, name)}
		}
		return nil, &Error{Class: ClassUnreachable, Err: fmt.Errorf("secret %s/%s: %w", namespace, name, err)}
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
