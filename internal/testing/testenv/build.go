package testenv

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// Build builds the project's command ./cmd/NAME into dir/as (as defaults to NAME) and returns
// its path: tests that run a binary run the one users run.
func Build(t testing.TB, dir, name, as string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building %s needs the go command: %v", name, err)
	}
	if as == "" {
		as = name
	}
	bin := filepath.Join(dir, as)
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/"+name) //nolint:gosec // the project's own build
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, out)
	}
	return bin
}
