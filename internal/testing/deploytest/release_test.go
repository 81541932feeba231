package deploytest_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// krewPlugin is the part of a krew manifest (krew.googlecontainertools.github.com/v1alpha2
// Plugin) that krew needs to install a platform's archive.
type krewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		Homepage         string `json:"homepage"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Caveats          string `json:"caveats"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Bin    string `json:"bin"`
		} `json:"platforms"`
	} `json:"spec"`
}

// TestKrewManifest checks plugins/homelab.yaml against the release workflow: once the workflow
// fills in the version and checksums, it is a krew Plugin named homelab whose every platform
// installs kubectl-homelab from an archive the workflow builds and attaches to the release.
func TestKrewManifest(t *testing.T) {
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "plugins", "homelab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	workflow, err := os.ReadFile(filepath.Join(root, ".github", "workflows", "release.yml"))
	if err != nil {
		t.Fatal(err)
	}
	// What the workflow does: the comments dropped, the tag for ${VERSION}, each archive's
	// checksum for its ${SHA256_os_arch}.
	var kept []string
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "#") {
			kept = append(kept, line)
		}
	}
	filled := strings.ReplaceAll(strings.Join(kept, "\n"), "${VERSION}", "v1.2.3")
	sums := map[string]string{}
	filled = regexp.MustCompile(`\$\{SHA256_([a-z0-9]+_[a-z0-9]+)\}`).ReplaceAllStringFunc(filled, func(m string) string {
		platform := strings.TrimSuffix(strings.TrimPrefix(m, "${SHA256_"), "}")
		sums[platform] = strings.Repeat("0123456789abcdef", 4)
		return sums[platform]
	})
	if strings.Contains(filled, "${") {
		t.Fatalf("placeholders the workflow does not fill:\n%s", filled)
	}
	var p krewPlugin
	if err := yaml.UnmarshalStrict([]byte(filled), &p); err != nil {
		t.Fatalf("plugins/homelab.yaml: %v", err)
	}
	if p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || p.Kind != "Plugin" || p.Metadata.Name != "homelab" || p.Spec.Version != "v1.2.3" || p.Spec.ShortDescription == "" {
		t.Fatalf("not the homelab Plugin: %+v", p)
	}
	want := map[string]bool{"linux_amd64": true, "linux_arm64": true, "darwin_arm64": true}
	for _, pl := range p.Spec.Platforms {
		platform := pl.Selector.MatchLabels["os"] + "_" + pl.Selector.MatchLabels["arch"]
		if !want[platform] {
			t.Errorf("platform %s is not one the release builds", platform)
			continue
		}
		delete(want, platform)
		archive := "kubectl-homelab_" + platform + ".tar.gz"
		if pl.URI != "https://github.com/homelab-autoscaler/homelab-autoscaler/releases/download/v1.2.3/"+archive {
			t.Errorf("%s: uri %s", platform, pl.URI)
		}
		if pl.Bin != "kubectl-homelab" || pl.SHA256 != sums[platform] {
			t.Errorf("%s: bin %q, sha256 %q (want the checksum of %s)", platform, pl.Bin, pl.SHA256, archive)
		}
		// The workflow's krew OS ARCH step writes this archive, holding kubectl-homelab.
		if goos, arch, _ := strings.Cut(platform, "_"); !strings.Contains(string(workflow), "krew "+goos+" ") || (arch == "arm64" && goos == "darwin" && !strings.Contains(string(workflow), "krew darwin arm64")) {
			t.Errorf("the release workflow builds no krew archive for %s", platform)
		}
	}
	for platform := range want {
		t.Errorf("no platform %s: the release builds its archive", platform)
	}
	if !strings.Contains(string(workflow), `"dist/release/kubectl-homelab_$1_$2.tar.gz"`) || !strings.Contains(string(workflow), "plugins/homelab.yaml > dist/homelab.yaml") {
		t.Error("the release workflow no longer names the archives kubectl-homelab_OS_ARCH.tar.gz or fills plugins/homelab.yaml")
	}
}
