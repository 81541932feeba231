package doctable

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		want, got string
		ok        bool
	}{
		{"no such Group", "NotFound: node group a/b: no such Group", true},
		{"node group <ns>/nope: no such Group", "node group cp-1-2-3/nope: no such Group", true},
		{"node group <ns>/nope", "node group /nope", false},
		{"match '^(0|1)$'", "should match '^(0|1)$'", true},
		{"want <namespace>/<name>", "want <namespace>/<name>", true},
		{"port <port>: refused", "port 8080: timeout", false},
	} {
		if got := Matches(tc.want, tc.got); got != tc.ok {
			t.Errorf("Matches(%q, %q) = %t, want %t", tc.want, tc.got, got, tc.ok)
		}
	}
}

func TestLoadRefusesBrokenTables(t *testing.T) {
	for name, doc := range map[string]string{
		"duplicate id":        "| `a` | x | `m` |\n| `a` | y | `n` |\n",
		"message not in code": "| `a` | x | m |\n",
	} {
		path := filepath.Join(t.TempDir(), "doc.md")
		if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	path := filepath.Join(t.TempDir(), "doc.md")
	if err := os.WriteFile(path, []byte("| id | m |\n|---|---|\n| `a` | x | `one \\| two` |\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rows, err := Load(path)
	if err != nil || len(rows) != 1 || rows["a"].Message != "one | two" || rows["a"].Line != 3 {
		t.Fatalf("rows %+v, %v", rows, err)
	}
}
