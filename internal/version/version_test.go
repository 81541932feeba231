package version

import (
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "1.2.3"
	if got := String(); got != "1.2.3" {
		t.Fatalf("with the release set: %q", got)
	}
	Version = ""
	// A test binary records no VCS settings: it reports a development build.
	if got := String(); !strings.HasPrefix(got, "devel") {
		t.Fatalf("without a release: %q", got)
	}
	if p := Platform(); !strings.HasPrefix(p, "go1.") || !strings.Contains(p, "/") {
		t.Fatalf("platform %q", p)
	}
}
