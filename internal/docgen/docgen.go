// Package docgen writes the reference parts of docs/configuration.md from their sources: the
// manager's registered flags and the CRDs' OpenAPI schemas. Generated, the reference cannot
// drift from the code; hack/verify-generated.sh fails when the checked-in file is stale. Its
// test keeps the hand-written docs/metrics.md true to the metrics the code registers.
package docgen

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// FlagTable writes every flag of fs, sorted by name, as a Markdown table.
func FlagTable(w io.Writer, fs *flag.FlagSet) error {
	var b strings.Builder
	b.WriteString("| flag | default | meaning |\n|---|---|---|\n")
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		arg := ""
		if name != "" {
			arg = " " + name
		}
		fmt.Fprintf(&b, "| `--%s%s` | %s | %s |\n", f.Name, arg, code(f.DefValue), cell(usage))
	})
	_, err := io.WriteString(w, b.String())
	return err
}

// CRDTables writes, for every CRD manifest in dir, a section with one table row per field of
// each served version's spec and status: path, type, default and description.
func CRDTables(w io.Writer, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, crd); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		for _, v := range crd.Spec.Versions {
			if !v.Served || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			fmt.Fprintf(&b, "\n### %s (`%s/%s`)\n\n", crd.Spec.Names.Kind, crd.Spec.Group, v.Name)
			root := v.Schema.OpenAPIV3Schema
			if root.Description != "" {
				b.WriteString(oneLine(root.Description) + "\n\n")
			}
			b.WriteString("| field | type | default | description |\n|---|---|---|---|\n")
			for _, top := range []string{"spec", "status"} {
				if s, ok := root.Properties[top]; ok {
					fields(&b, top, s, slices.Contains(root.Required, top))
				}
			}
		}
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// fields writes the row of the field at path and, depth first, of everything under it.
func fields(b *strings.Builder, path string, s apiextensionsv1.JSONSchemaProps, required bool) {
	typ := typeOf(s)
	if required {
		typ += ", required"
	}
	def := ""
	if s.Default != nil {
		def = code(string(s.Default.Raw))
	}
	fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", path, typ, def, cell(oneLine(s.Description)))
	switch {
	case len(s.Properties) > 0:
		for _, name := range sortedKeys(s.Properties) {
			fields(b, path+"."+name, s.Properties[name], slices.Contains(s.Required, name))
		}
	case s.Type == "array" && s.Items != nil && s.Items.Schema != nil && len(s.Items.Schema.Properties) > 0:
		item := *s.Items.Schema
		for _, name := range sortedKeys(item.Properties) {
			fields(b, path+"[]."+name, item.Properties[name], slices.Contains(item.Required, name))
		}
	}
}

// typeOf names a schema's type the way a reader of YAML needs it, with its enumeration and
// bounds.
func typeOf(s apiextensionsv1.JSONSchemaProps) string {
	t := s.Type
	switch {
	case s.XIntOrString:
		t = "int or string"
	case s.Type == "array" && s.Items != nil && s.Items.Schema != nil:
		t = "[]" + typeOf(*s.Items.Schema)
	case s.Type == "object" && s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil:
		t = "map[string]" + typeOf(*s.AdditionalProperties.Schema)
	case s.Format != "":
		t += " (" + s.Format + ")"
	}
	var extra []string
	if len(s.Enum) > 0 {
		vals := make([]string, 0, len(s.Enum))
		for _, e := range s.Enum {
			vals = append(vals, string(e.Raw))
		}
		extra = append(extra, "one of "+strings.Join(vals, ", "))
	}
	if s.Minimum != nil {
		extra = append(extra, "≥ "+strconv.FormatFloat(*s.Minimum, 'f', -1, 64))
	}
	if s.Maximum != nil {
		extra = append(extra, "≤ "+strconv.FormatFloat(*s.Maximum, 'f', -1, 64))
	}
	if s.MaxLength != nil {
		extra = append(extra, "at most "+strconv.FormatInt(*s.MaxLength, 10)+" characters")
	}
	if s.MaxItems != nil {
		extra = append(extra, "at most "+strconv.FormatInt(*s.MaxItems, 10)+" items")
	}
	if len(extra) > 0 {
		t += "; " + strings.Join(extra, "; ")
	}
	return t
}

func sortedKeys(m map[string]apiextensionsv1.JSONSchemaProps) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// oneLine joins a multi-line description into one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// cell escapes text for a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// code formats a value as inline code, or nothing for an empty one.
func code(s string) string {
	if s == "" {
		return ""
	}
	if strings.Contains(s, "`") {
		b, _ := json.Marshal(s)
		return cell(string(b))
	}
	return "`" + cell(s) + "`"
}
