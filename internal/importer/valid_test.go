package importer_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// goldenDocs returns the YAML documents of every golden output, by case.
func goldenDocs(t *testing.T) map[string][][]byte {
	t.Helper()
	docs := map[string][][]byte{}
	for _, c := range goldenCases {
		data, err := os.ReadFile(c.outPath())
		if errors.Is(err, os.ErrNotExist) {
			continue // the import fails: there is no output
		}
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", c.outPath(), err)
			}
			if len(bytes.TrimSpace(doc)) > 0 {
				docs[c.outPath()] = append(docs[c.outPath()], doc)
			}
		}
	}
	if len(docs) == 0 {
		t.Fatal("no golden output found")
	}
	return docs
}

// Every object the import writes is one of our kinds, field for field.
func TestGoldenDecodesStrictly(t *testing.T) {
	for path, docs := range goldenDocs(t) {
		for i, doc := range docs {
			var head struct{ Kind string }
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Fatalf("%s document %d: %v", path, i+1, err)
			}
			var obj any
			switch head.Kind {
			case "Group":
				obj = &infrav1.Group{}
			case "Machine":
				obj = &infrav1.Machine{}
			default:
				t.Fatalf("%s document %d: kind %q", path, i+1, head.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Errorf("%s document %d: %v", path, i+1, err)
			}
		}
	}
}

// Every object the import writes is accepted by an apiserver with the project's CRDs, with
// strict field validation: nothing is refused, nothing is dropped.
func TestGoldenAppliesToAPIServer(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	ctx := t.Context()
	n := 0
	for path, docs := range goldenDocs(t) {
		n++
		// Each golden file gets namespaces of its own: two files may name the same objects.
		namespaces := map[string]string{}
		for i, doc := range docs {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(doc, &u.Object); err != nil {
				t.Fatalf("%s document %d: %v", path, i+1, err)
			}
			ns, ok := namespaces[u.GetNamespace()]
			if !ok {
				ns = fmt.Sprintf("import-%d-%d", n, len(namespaces))
				namespaces[u.GetNamespace()] = ns
				if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
					t.Fatal(err)
				}
			}
			u.SetNamespace(ns)
			if err := env.Client.Create(ctx, u, client.FieldValidation("Strict")); err != nil {
				t.Errorf("%s document %d (%s %s): %v", path, i+1, u.GetKind(), u.GetName(), err)
			}
		}
	}
}
