package importer_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/importer"
)

// addInputs seeds f with the inputs of the golden cases in dir.
func addInputs(f *testing.F, dir string) {
	for _, c := range goldenCases {
		if c.dir != dir {
			continue
		}
		for _, name := range c.inputs {
			data, err := os.ReadFile(filepath.Join("testdata", dir, name))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(name, data)
		}
	}
}

// checkOutcome holds for every import: a refused input yields problems and no objects, an
// accepted one yields YAML that decodes strictly into our kinds.
func checkOutcome(t *testing.T, res *importer.Result, err error) {
	if err != nil {
		var ie *importer.Error
		if !errors.As(err, &ie) || len(ie.Problems) == 0 {
			t.Fatalf("error without problems: %v", err)
		}
		if len(res.Groups)+len(res.Machines) > 0 {
			t.Fatalf("a refused import returned objects")
		}
		return
	}
	out, err := res.YAML()
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	docs := 0
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		docs++
		var head struct{ Kind string }
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatal(err)
		}
		var obj any = &infrav1.Machine{}
		if head.Kind == "Group" {
			obj = &infrav1.Group{}
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%v:\n%s", err, doc)
		}
	}
	if objects := len(res.Groups) + len(res.Machines); docs != objects {
		t.Fatalf("%d documents for %d objects:\n%s", docs, objects, out)
	}
}

func FuzzUpstream(f *testing.F) {
	addInputs(f, "upstream")
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		res, err := importer.Upstream([]importer.Input{{Name: name, Data: data}}, importer.Options{})
		checkOutcome(t, res, err)
	})
}

func FuzzInventory(f *testing.F) {
	addInputs(f, "inventory")
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		res, err := importer.Inventory(importer.Input{Name: name, Data: data}, importer.Options{})
		checkOutcome(t, res, err)
	})
}
