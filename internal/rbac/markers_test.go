package rbac_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// TestMarkersOnlyHere fails on an RBAC marker outside internal/rbac: controller-gen reads only
// this package's two children, so a marker elsewhere would be silently left out of the roles.
func TestMarkersOnlyHere(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(root, "internal", "rbac")
	marker := "+kubebuilder:" + "rbac"
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == own || strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		data, err := os.ReadFile(path) //nolint:gosec // walking the repository's own files
		if err != nil {
			return err
		}
		if strings.Contains(string(data), marker) {
			rel, _ := filepath.Rel(root, path)
			t.Errorf("%s has an RBAC marker; move it to internal/rbac/cluster or internal/rbac/namespaced", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
