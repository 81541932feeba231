package deploytest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDockerfile checks the image rules without a container engine: a static, trimmed build
// stamped with the release (--build-arg VERSION) in one stage, a distroless (or scratch) final stage running as a numeric non-root user, holding
// the manager (its entrypoint), homelabctl and homelab-agent (the agent DaemonSets' command) at
// the root, and a build context (.dockerignore) that holds every package the binaries import.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var froms, users, runs, copies, entrypoints []string
	var finalCopies []string // COPY --from of the final stage
	var line strings.Builder
	for _, text := range strings.Split(string(dockerfile), "\n") {
		text = strings.TrimSpace(text)
		if strings.HasPrefix(text, "#") || text == "" {
			continue
		}
		// Join continuation lines into one instruction.
		if cont, ok := strings.CutSuffix(text, "\\"); ok {
			line.WriteString(cont + " ")
			continue
		}
		line.WriteString(text)
		instr := line.String()
		line.Reset()
		keyword, rest, _ := strings.Cut(instr, " ")
		switch strings.ToUpper(keyword) {
		case "FROM":
			froms = append(froms, rest)
			users = nil // USER applies per stage
			finalCopies = nil
		case "USER":
			users = append(users, rest)
		case "RUN":
			runs = append(runs, rest)
		case "COPY":
			copies = append(copies, rest)
			if strings.HasPrefix(rest, "--from") {
				finalCopies = append(finalCopies, rest)
			}
		case "ENTRYPOINT":
			entrypoints = append(entrypoints, rest)
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got FROM %v", froms)
	}
	final := froms[len(froms)-1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("final stage %q is not distroless/static or scratch", final)
	}
	if len(users) == 0 || users[len(users)-1] != "65532:65532" {
		t.Errorf("the final stage must run as USER 65532:65532, has %v", users)
	}
	build := ""
	for _, r := range runs {
		if strings.Contains(r, "go build") {
			build = r
		}
	}
	binaries := []string{"homelab-autoscaler", "homelabctl", "homelab-agent"}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags="-s -w `, "internal/version.Version=$VERSION", "-o /out/"} {
		if !strings.Contains(build, want) {
			t.Errorf("the go build %q lacks %s", build, want)
		}
	}
	// Each binary is built into /out and copied from there to the image's root.
	image := map[string]bool{}
	for _, c := range finalCopies {
		fields := strings.Fields(c)
		if fields[len(fields)-1] != "/" {
			continue
		}
		for _, src := range fields[1 : len(fields)-1] {
			if bin, ok := strings.CutPrefix(src, "/out/"); ok {
				image[bin] = true
			}
		}
	}
	for _, bin := range binaries {
		if !slices.Contains(strings.Fields(build), "./cmd/"+bin) {
			t.Errorf("the go build %q does not build ./cmd/%s", build, bin)
		}
		if !image[bin] {
			t.Errorf("the final stage does not copy /out/%s to /: the image lacks /%s", bin, bin)
		}
	}
	if len(entrypoints) == 0 || entrypoints[len(entrypoints)-1] != `["/homelab-autoscaler"]` {
		t.Errorf("the entrypoint is %v, want the manager, /homelab-autoscaler", entrypoints)
	}

	// Every source folder the binaries need is copied and not excluded by .dockerignore.
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var copied, excluded []string
	for _, c := range copies {
		if !strings.HasPrefix(c, "--from") {
			fields := strings.Fields(c)
			copied = append(copied, fields[:len(fields)-1]...)
		}
	}
	for _, l := range strings.Split(string(ignore), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "!") && l != "*" && !strings.Contains(l, "*") {
			excluded = append(excluded, strings.TrimSuffix(l, "/"))
		}
	}
	args := []string{"list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}"}
	for _, bin := range binaries {
		args = append(args, "./cmd/"+bin)
	}
	list := exec.Command("go", args...)
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a module dependency, downloaded in the image
		}
		top := strings.SplitN(rel, string(filepath.Separator), 2)[0] + "/"
		if !slices.Contains(copied, top) {
			t.Errorf("the binaries need %s, which the Dockerfile does not copy", rel)
		}
		for _, ex := range excluded {
			if rel == ex || strings.HasPrefix(rel, ex+"/") {
				t.Errorf("the binaries need %s, which .dockerignore excludes", rel)
			}
		}
	}
}
