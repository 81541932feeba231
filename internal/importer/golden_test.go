package importer_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/importer"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata from the current output")

// goldenCase is one import of files in testdata. Its golden files are <dir>/<name>.golden.yaml
// (the objects written) and <dir>/<name>.messages.golden (what is said on stderr).
type goldenCase struct {
	dir, name string
	inputs    []string
	opts      importer.Options
}

var goldenCases = []goldenCase{
	{dir: "upstream", name: "basic", inputs: []string{"basic.yaml"}},
	{dir: "upstream", name: "list", inputs: []string{"list.yaml"}, opts: importer.Options{Namespace: "homelab"}},
	{dir: "upstream", name: "split", inputs: []string{"split-groups.yaml", "split-nodes.yaml"}},
	{dir: "upstream", name: "bad", inputs: []string{"bad.yaml"}},
	{dir: "inventory", name: "csv", inputs: []string{"inventory.csv"}},
	{dir: "inventory", name: "yaml", inputs: []string{"inventory.yaml"}},
	{dir: "inventory", name: "no-groups", inputs: []string{"no-groups.csv"}, opts: importer.Options{NoGroups: true, Namespace: "lab"}},
	{dir: "inventory", name: "bad-csv", inputs: []string{"bad.csv"}},
	{dir: "inventory", name: "bad-header", inputs: []string{"bad-header.csv"}},
	{dir: "inventory", name: "bad-yaml", inputs: []string{"bad.yaml"}},
}

// run imports the case's inputs and returns the YAML written and the messages.
func (c goldenCase) run(t *testing.T) (out []byte, messages string) {
	t.Helper()
	var inputs []importer.Input
	for _, name := range c.inputs {
		data, err := os.ReadFile(filepath.Join("testdata", c.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, importer.Input{Name: name, Data: data})
	}
	var res *importer.Result
	var err error
	if c.dir == "upstream" {
		res, err = importer.Upstream(inputs, c.opts)
	} else {
		res, err = importer.Inventory(inputs[0], c.opts)
	}
	var msg strings.Builder
	for _, s := range res.Skipped {
		fmt.Fprintf(&msg, "skipped: %s\n", s)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(&msg, "warning: %s\n", w)
	}
	if err != nil {
		var ie *importer.Error
		if !errors.As(err, &ie) {
			t.Fatalf("error of type %T: %v", err, err)
		}
		for _, p := range ie.Problems {
			fmt.Fprintf(&msg, "error: %s\n", p)
		}
		if len(res.Groups)+len(res.Machines) > 0 {
			t.Fatalf("a failed import returned %d objects", len(res.Groups)+len(res.Machines))
		}
		return nil, msg.String()
	}
	out, err = res.YAML()
	if err != nil {
		t.Fatal(err)
	}
	return out, msg.String()
}

func (c goldenCase) outPath() string {
	return filepath.Join("testdata", c.dir, c.name+".golden.yaml")
}

func (c goldenCase) messagesPath() string {
	return filepath.Join("testdata", c.dir, c.name+".messages.golden")
}

func TestGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.dir+"/"+c.name, func(t *testing.T) {
			out, messages := c.run(t)
			again, _ := c.run(t)
			if !bytes.Equal(out, again) {
				t.Fatalf("two imports of the same input differ:\n%s\n---- and ----\n%s", out, again)
			}
			compareGolden(t, c.outPath(), out)
			compareGolden(t, c.messagesPath(), []byte(messages))
		})
	}
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if len(got) == 0 {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			return
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		want, err = nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./internal/importer -update rewrites it):\n---- got ----\n%s\n---- want ----\n%s", path, got, want)
	}
}
