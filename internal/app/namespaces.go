package app

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// watchedNamespaces splits --namespace, a comma-separated list of namespace names, into its
// names: none means every namespace. The manager's RBAC is bound in each of these namespaces
// only, so a misspelt or repeated name is refused rather than watched (and denied) in silence.
func watchedNamespaces(list string) ([]string, error) {
	if list == "" {
		return nil, nil
	}
	names := strings.Split(list, ",")
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "" {
			return nil, fmt.Errorf("--namespace %q has an empty name (a comma too many)", list)
		}
		if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
			return nil, fmt.Errorf("--namespace %q: %q is not a namespace name: %s", list, n, strings.Join(errs, "; "))
		}
		if seen[n] {
			return nil, fmt.Errorf("--namespace %q names %q twice", list, n)
		}
		seen[n] = true
	}
	return names, nil
}
