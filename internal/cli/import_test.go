package cli_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cli"
)

// importTestdata is where the importer keeps its inputs and golden outputs; the command must
// write exactly what the package produces.
const importTestdata = "../importer/testdata"

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// withStdin makes os.Stdin read data for the rest of the test.
func withStdin(t *testing.T, data string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = f
	t.Cleanup(func() {
		os.Stdin = old
		_ = f.Close()
	})
}

func TestImportUpstream(t *testing.T) {
	in := filepath.Join(importTestdata, "upstream", "basic.yaml")
	out, errOut, err := run(t, "import", "upstream", in)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, errOut)
	}
	if want := readFile(t, filepath.Join(importTestdata, "upstream", "basic.golden.yaml")); out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	if want := readFile(t, filepath.Join(importTestdata, "upstream", "basic.messages.golden")); errOut != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, want)
	}
}

func TestImportUpstreamSeveralFilesAndNamespace(t *testing.T) {
	dir := filepath.Join(importTestdata, "upstream")
	// Flags may come after the file names.
	out, _, err := run(t, "import", "upstream", filepath.Join(dir, "split-groups.yaml"), filepath.Join(dir, "split-nodes.yaml"), "-n", "homelab")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out, "\n  namespace: homelab\n"); got != 3 {
		t.Errorf("%d objects in namespace homelab, want 3:\n%s", got, out)
	}
}

func TestImportInventoryFromStdin(t *testing.T) {
	withStdin(t, readFile(t, filepath.Join(importTestdata, "inventory", "no-groups.csv")))
	out, errOut, err := run(t, "import", "inventory", "--no-groups", "-", "--namespace", "lab")
	if err != nil {
		t.Fatalf("import: %v\n%s", err, errOut)
	}
	if want := readFile(t, filepath.Join(importTestdata, "inventory", "no-groups.golden.yaml")); out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	if errOut != "" {
		t.Errorf("stderr: %s", errOut)
	}
}

func TestImportRefusedWritesNothing(t *testing.T) {
	in := filepath.Join(importTestdata, "inventory", "bad.csv")
	out, errOut, err := run(t, "import", "inventory", in)
	if err == nil || errors.Is(err, cli.ErrUsage) {
		t.Fatalf("want a failure that is not a usage error, got %v", err)
	}
	if out != "" {
		t.Errorf("stdout is not empty:\n%s", out)
	}
	want := readFile(t, filepath.Join(importTestdata, "inventory", "bad-csv.messages.golden"))
	if errOut != strings.ReplaceAll(want, "bad.csv", in) {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, want)
	}
	if n := strings.Count(want, "\n"); err.Error() != "import inventory: "+strconv.Itoa(n)+" problems in the input; nothing was written" {
		t.Errorf("error %q", err)
	}
}

func TestImportUsage(t *testing.T) {
	in := filepath.Join(importTestdata, "inventory", "no-groups.csv")
	for _, args := range [][]string{
		{"import"},
		{"import", "nodes", in},
		{"import", "upstream"},
		{"import", "inventory", in, in},
		{"import", "inventory", "-n", "Home_Lab", in},
		{"import", "upstream", "--no-groups", in},
		{"import", "upstream", "-", "-"},
	} {
		if _, _, err := run(t, args...); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("%q: want a usage error, got %v", args, err)
		}
	}
	if out, _, err := run(t, "import", "inventory", "-h"); err != nil || !strings.Contains(out, "--no-groups") {
		t.Errorf("-h: %v\n%s", err, out)
	}
	if _, _, err := run(t, "import", "upstream", filepath.Join(t.TempDir(), "missing.yaml")); err == nil || errors.Is(err, cli.ErrUsage) {
		t.Errorf("missing file: %v", err)
	}
}
