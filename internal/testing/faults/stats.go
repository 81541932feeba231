package faults

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Stats counts what a run did: faults injected by kind, operations completed by kind, checks
// made by outcome, and invariant violations.
type Stats struct {
	mu         sync.Mutex
	faults     map[string]int
	ops        map[string]int
	checks     map[string]int
	violations []string
}

// NewStats returns empty counters.
func NewStats() *Stats {
	return &Stats{faults: map[string]int{}, ops: map[string]int{}, checks: map[string]int{}}
}

// Fault counts one injected fault of kind.
func (s *Stats) Fault(kind string) { s.add(s.faults, kind, 1) }

// Op counts n completed operations of kind.
func (s *Stats) Op(kind string, n int) { s.add(s.ops, kind, n) }

// Check counts one check that is not a plain pass or fail, by its outcome: a power-loss recovery
// (recovered, or left because something else changed the machine), or a command or spec change
// the watch could not judge.
func (s *Stats) Check(outcome string) { s.add(s.checks, outcome, 1) }

// Violation records a broken invariant.
func (s *Stats) Violation(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.violations = append(s.violations, v)
}

func (s *Stats) add(m map[string]int, k string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m[k] += n
}

// Violations returns the recorded violations.
func (s *Stats) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.violations)
}

// Faults returns the faults injected, by kind.
func (s *Stats) Faults() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.faults)
}

// Summary is the report printed after a run.
func (s *Stats) Summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	line := func(title string, m map[string]int) {
		total := 0
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			total += m[k]
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
		fmt.Fprintf(&b, "%s: %d (%s)\n", title, total, strings.Join(parts, ", "))
	}
	line("faults injected", s.faults)
	line("operations completed", s.ops)
	if len(s.checks) > 0 {
		line("checks", s.checks)
	}
	fmt.Fprintf(&b, "invariant violations: %d\n", len(s.violations))
	for _, v := range s.violations {
		fmt.Fprintf(&b, "  - %s\n", v)
	}
	return b.String()
}

// Merge adds other's counts to s.
func (s *Stats) Merge(other *Stats) {
	other.mu.Lock()
	faults, ops, checks, violations := maps.Clone(other.faults), maps.Clone(other.ops), maps.Clone(other.checks), slices.Clone(other.violations)
	other.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range faults {
		s.faults[k] += v
	}
	for k, v := range ops {
		s.ops[k] += v
	}
	for k, v := range checks {
		s.checks[k] += v
	}
	s.violations = append(s.violations, violations...)
}
