package cli_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// TestBinary runs the homelabctl users run: its generated completion scripts in real shells,
// as the kubectl plugin under the control plane's kubectl, and kubectl's connection flags.
func TestBinary(t *testing.T) {
	const ns = "binary"
	ctx := context.Background()
	if err := createNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, &infrav1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workers"}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"alpha", "beta", "gamma"} {
		m := machine(n)
		m.Namespace = ns
		if err := env.Client.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	kubeconfig, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	homelabctl := testenv.Build(t, bin, "homelabctl", "")
	// The plugin and its completion helper are the same binary under kubectl's names.
	for _, name := range []string{"kubectl-homelab", "kubectl_complete-homelab"} {
		if err := os.Symlink(homelabctl, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	assets, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	path := bin + string(os.PathListSeparator) + os.Getenv("PATH")
	run := func(t *testing.T, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...) //nolint:gosec // the test's own binaries
		cmd.Env = append(os.Environ(), "PATH="+path, "HOME="+t.TempDir())
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errOut.String())
		}
		return out.String()
	}
	lines := func(s string) []string { return strings.Fields(s) }

	t.Run("bash completion", func(t *testing.T) {
		script := filepath.Join(t.TempDir(), "homelabctl.bash")
		if err := os.WriteFile(script, []byte(run(t, homelabctl, "completion", "bash")), 0o600); err != nil {
			t.Fatal(err)
		}
		// What bash does on <TAB>: the words typed so far, then the function the script
		// registered for homelabctl.
		complete := func(words ...string) []string {
			prog := `source /usr/share/bash-completion/bash_completion
source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
$(complete -p homelabctl | sed -E 's/.*-F ([^ ]+) .*/\1/') homelabctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"`
			return lines(run(t, "bash", append([]string{"-c", prog, "bash", script}, words...)...))
		}
		if got := complete("homelabctl", "sta"); strings.Join(got, " ") != "status" {
			t.Errorf("homelabctl sta<TAB>: %q", got)
		}
		if got := complete("homelabctl", "--kubeconfig", kubeconfig, "-n", ns, "power", "on", ""); strings.Join(got, " ") != "alpha beta gamma" {
			t.Errorf("power on <TAB>: %q, want the Machines of %s", got, ns)
		}
		if got := complete("homelabctl", "--kubeconfig", kubeconfig, "-n", ns, "effective", "b"); strings.Join(got, " ") != "beta" {
			t.Errorf("effective b<TAB>: %q", got)
		}
		if got := complete("homelabctl", "--kubeconfig", kubeconfig, "-n", ns, "energy", ""); strings.Join(got, " ") != "workers" {
			t.Errorf("energy <TAB>: %q, want the Groups", got)
		}
		if got := complete("homelabctl", "status", "-o", ""); strings.Join(got, " ") != "table wide json yaml" {
			t.Errorf("status -o <TAB>: %q", got)
		}
		if got := complete("homelabctl", "--kubeconfig", kubeconfig, "-n", "bin"); strings.Join(got, " ") != "binary" {
			t.Errorf("-n bin<TAB>: %q, want the namespace", got)
		}
	})

	t.Run("zsh and fish completion", func(t *testing.T) {
		// Both scripts ask the binary the same way bash's does (__complete, tested above);
		// here each shell must accept its script.
		for _, sh := range []struct{ shell, check string }{{"zsh", "-n"}, {"fish", "--no-execute"}} {
			script := filepath.Join(t.TempDir(), "homelabctl."+sh.shell)
			body := run(t, homelabctl, "completion", sh.shell)
			if !strings.Contains(body, "homelabctl") {
				t.Fatalf("%s script does not name homelabctl:\n%s", sh.shell, body)
			}
			if err := os.WriteFile(script, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			run(t, sh.shell, sh.check, script)
		}
		got := lines(run(t, homelabctl, "__complete", "--kubeconfig", kubeconfig, "-n", ns, "wol", "test", ""))
		if strings.Join(got, " ") != "alpha beta gamma :4" {
			t.Errorf("__complete wol test: %q", got)
		}
	})

	t.Run("kubectl plugin", func(t *testing.T) {
		kubectl := filepath.Join(assets, "kubectl")
		out := run(t, kubectl, "homelab", "status", "--kubeconfig", kubeconfig, "-n", ns)
		for _, want := range []string{"workers", "alpha", "beta", "gamma", "MACHINE"} {
			if !strings.Contains(out, want) {
				t.Fatalf("kubectl homelab status lacks %q:\n%s", want, out)
			}
		}
		if out := run(t, kubectl, "homelab", "--help"); !strings.Contains(out, "kubectl homelab [command]") {
			t.Errorf("the plugin's help does not call it kubectl homelab:\n%s", out)
		}
		if out := run(t, kubectl, "plugin", "list"); !strings.Contains(out, "kubectl-homelab") {
			t.Errorf("kubectl plugin list:\n%s", out)
		}
		// kubectl's own completion of the plugin's words goes through kubectl_complete-homelab.
		got := lines(run(t, kubectl, "__complete", "homelab", "--kubeconfig", kubeconfig, "-n", ns, "power", "off", "g"))
		if len(got) == 0 || got[0] != "gamma" {
			t.Errorf("kubectl homelab power off g<TAB>: %q", got)
		}
	})

	t.Run("kubectl connection flags", func(t *testing.T) {
		// The kubeconfig's current context points nowhere; --context picks the working one.
		cfg, err := clientcmd.LoadFromFile(kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		working := cfg.CurrentContext
		cfg.Clusters["nowhere"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1"}
		cfg.Contexts["nowhere"] = &clientcmdapi.Context{Cluster: "nowhere", AuthInfo: cfg.Contexts[working].AuthInfo, Namespace: ns}
		cfg.Contexts[working].Namespace = ns
		cfg.CurrentContext = "nowhere"
		two := filepath.Join(t.TempDir(), "two-contexts")
		if err := clientcmd.WriteToFile(*cfg, two); err != nil {
			t.Fatal(err)
		}
		out := run(t, homelabctl, "status", "--kubeconfig", two, "--context", working, "-o", "wide")
		for _, want := range []string{"SOURCE", "FAILED BOOTS", "alpha"} {
			if !strings.Contains(out, want) {
				t.Fatalf("status -o wide in the context's namespace lacks %q:\n%s", want, out)
			}
		}
		if out := run(t, homelabctl, "--kubeconfig", two, "--context", working, "status", "-A", "-o", "yaml"); !strings.Contains(out, "namespace: "+ns) || !strings.Contains(out, "name: gamma") {
			t.Fatalf("status -A -o yaml:\n%s", out)
		}
		cmd := exec.Command(homelabctl, "status", "--kubeconfig", two) //nolint:gosec // the test's own binary
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "127.0.0.1:1") {
			t.Fatalf("the current context points nowhere, yet: %v\n%s", err, out)
		}
		// Impersonation reaches the API: a user without RBAC is refused.
		cmd = exec.Command(homelabctl, "status", "--kubeconfig", kubeconfig, "-n", ns, "--as", "nobody") //nolint:gosec // the test's own binary
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), `User "nobody" cannot list`) {
			t.Fatalf("status --as nobody: %v\n%s", err, out)
		}
	})
}
