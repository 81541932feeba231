package importer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// Input is one file to import.
type Input struct {
	// Name names the input in messages: the path as the user gave it, or "stdin".
	Name string
	// Data is the input's content.
	Data []byte
}

// Options change how an import names and groups what it builds.
type Options struct {
	// Namespace, when set, is the namespace of every object built, whatever the input says.
	Namespace string
	// NoGroups leaves the Groups out of an inventory import (they exist already).
	NoGroups bool
}

// Result is what an import built, and what it has to say about the input.
type Result struct {
	// Groups and Machines are the objects built; both are empty when the import failed.
	Groups   []*infrav1.Group
	Machines []*infrav1.Machine
	// Warnings name input that was converted with a loss: a field dropped, a value read
	// differently than before.
	Warnings []string
	// Skipped names the objects of the input that are not for this import.
	Skipped []string
}

// Error is every problem that kept an import from converting its input, in input order.
type Error struct {
	Problems []string
}

// Error returns the problems, one per line.
func (e *Error) Error() string { return strings.Join(e.Problems, "\n") }

// problems collects the errors and warnings of one import.
type problems struct {
	errs, warns []string
}

func (p *problems) errorf(format string, args ...any) {
	p.errs = append(p.errs, fmt.Sprintf(format, args...))
}

func (p *problems) warnf(format string, args ...any) {
	p.warns = append(p.warns, fmt.Sprintf(format, args...))
}

// finish sorts the objects and turns the errors into the import's error, dropping every object
// when there is one.
func (p *problems) finish(r *Result) (*Result, error) {
	r.Warnings = p.warns
	if len(p.errs) > 0 {
		r.Groups, r.Machines = nil, nil
		return r, &Error{Problems: p.errs}
	}
	sort.SliceStable(r.Groups, func(i, j int) bool {
		return less(r.Groups[i].Name, r.Groups[i].Namespace, r.Groups[j].Name, r.Groups[j].Namespace)
	})
	sort.SliceStable(r.Machines, func(i, j int) bool {
		return less(r.Machines[i].Name, r.Machines[i].Namespace, r.Machines[j].Name, r.Machines[j].Namespace)
	})
	return r, nil
}

func less(name1, ns1, name2, ns2 string) bool {
	if name1 != name2 {
		return name1 < name2
	}
	return ns1 < ns2
}

// YAML renders the objects as a stream of YAML documents, Groups first, each with apiVersion,
// kind, metadata (name and namespace) and spec only: what a user keeps in git and applies.
func (r *Result) YAML() ([]byte, error) {
	var buf bytes.Buffer
	for _, g := range r.Groups {
		if err := writeDoc(&buf, "Group", g.Name, g.Namespace, g.Spec, nil); err != nil {
			return nil, fmt.Errorf("group %s: %w", g.Name, err)
		}
	}
	for _, m := range r.Machines {
		if err := writeDoc(&buf, "Machine", m.Name, m.Namespace, m.Spec, plainPrice(m.Spec.Pricing)); err != nil {
			return nil, fmt.Errorf("machine %s: %w", m.Name, err)
		}
	}
	return buf.Bytes(), nil
}

// plainPrice rewrites spec.pricing.hourlyRate as a decimal number: a Quantity prints 0.12 as
// "120m", which is right for CPUs and puzzling for a price.
func plainPrice(p *infrav1.Pricing) func(spec map[string]any) {
	if p == nil {
		return nil
	}
	rate := p.HourlyRate.AsDec().String()
	return func(spec map[string]any) {
		if pricing, ok := spec["pricing"].(map[string]any); ok {
			pricing["hourlyRate"] = rate
		}
	}
}

func writeDoc(buf *bytes.Buffer, kind, name, namespace string, spec any, edit func(map[string]any)) error {
	raw, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var specMap map[string]any
	if err := dec.Decode(&specMap); err != nil {
		return err
	}
	if edit != nil {
		edit(specMap)
	}
	meta := map[string]any{"name": name}
	if namespace != "" {
		meta["namespace"] = namespace
	}
	out, err := yaml.Marshal(map[string]any{
		"apiVersion": infrav1.GroupVersion.String(),
		"kind":       kind,
		"metadata":   meta,
		"spec":       specMap,
	})
	if err != nil {
		return err
	}
	buf.WriteString("---\n")
	buf.Write(out)
	return nil
}
