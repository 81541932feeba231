package power

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestClientConfigMapsReadsDataAndBinaryData(t *testing.T) {
	t.Parallel()
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(&corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "bmc-ca"},
		Data:       map[string]string{"ca.crt": "PEM"},
		BinaryData: map[string][]byte{"der": {0x30, 0x82}},
	}).Build()
	r := ClientConfigMaps{Reader: c}
	ctx := context.Background()

	if v, err := r.ConfigMapValue(ctx, testNamespace, "bmc-ca", "ca.crt"); err != nil || string(v) != "PEM" {
		t.Fatalf("data key: %q, %v", v, err)
	}
	if v, err := r.ConfigMapValue(ctx, testNamespace, "bmc-ca", "der"); err != nil || len(v) != 2 {
		t.Fatalf("binaryData key: %v, %v", v, err)
	}
	_, err := r.ConfigMapValue(ctx, testNamespace, "bmc-ca", "missing")
	wantClass(t, err, ClassConfig)
	_, err = r.ConfigMapValue(ctx, testNamespace, "other", "ca.crt")
	wantClass(t, err, ClassConfig)
}
