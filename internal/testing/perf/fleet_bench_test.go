package perf_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/optimistic"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

// The benchmark is configured by the environment, because hack/benchreport runs it once per
// fleet size in a process of its own (so that memory is measured per size, not accumulated).
const (
	envOut       = "BENCH_OUT"        // where the Result goes as JSON; without it the benchmark fails
	envSize      = "BENCH_SIZE"       // machines in the fleet (default 100)
	envReps      = "BENCH_REPS"       // repetitions of each measurement (default 3)
	envSim       = "BENCH_SIM"        // the homelab-sim binary (default bin/homelab-sim)
	envBootDelay = "BENCH_BOOT_DELAY" // the simulated machines' boot delay (default 2s)
	// envFleetParts names the parts of BenchmarkFleet to run, comma-separated: lifecycle, rpcs
	// (default both); a part left out is missing from the Result.
	envFleetParts = "BENCH_FLEET_PARTS"
	// envLogDir keeps the managers' logs there instead of in the benchmark's temporary folder.
	envLogDir = "BENCH_LOG_DIR"
	// BENCH_MANAGER and BENCH_PROFILE_DIR: see manager_bench_test.go and profile_bench_test.go.
)

// BenchmarkFleet measures one fleet size and writes the Result to BENCH_OUT, which `make bench`
// sets (`make bench-go` leaves this package out). It is a fixed-iteration harness: it ignores
// b.N (each measurement repeats itself BENCH_REPS times), so the ns/op the test framework prints
// is the whole run, fleet creation included, and means nothing per call. The figures are in the
// Result: call latencies time the calls alone, never the undo that follows them.
func BenchmarkFleet(b *testing.B) {
	out := outPath(b)
	ctrl.SetLogger(logr.Discard())
	r := &run{b: b, start: time.Now(), size: envInt(b, envSize, 100), reps: envInt(b, envReps, 3), boot: 2 * time.Second}
	if v := os.Getenv(envBootDelay); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("%s: %v", envBootDelay, err)
		}
		r.boot = d
	}
	simBin := simBinary(b)
	r.res = &perf.Result{Size: r.size, Repetitions: r.reps, BootDelay: r.boot}
	r.notes = &r.res.Notes
	r.profileDir = os.Getenv(envProfileDir)

	parts := map[string]bool{"lifecycle": true, "rpcs": true}
	if v := os.Getenv(envFleetParts); v != "" {
		parts = map[string]bool{}
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "lifecycle" && p != "rpcs" {
				b.Fatalf("%s: unknown part %q (want lifecycle, rpcs)", envFleetParts, p)
			}
			parts[strings.TrimSpace(p)] = true
		}
	}
	kubeconfig := r.controlPlane()
	if parts["lifecycle"] {
		r.lifecycle(kubeconfig, simBin)
	}
	if parts["rpcs"] {
		r.rpcs()
	}

	r.res.Took = time.Since(r.start)
	r.writeResult(out, r.res)
}

// controlPlane starts etcd, kube-apiserver and kwok for the rest of the benchmark and returns
// a kubeconfig for the programs it runs.
func (r *run) controlPlane() string {
	b := r.b
	r.logf("starting etcd and kube-apiserver")
	env, err := testenv.Start()
	if err != nil {
		b.Fatal(err)
	}
	// The first cleanup runs last: after kwok, homelab-sim and the managers have stopped, so the
	// apiserver has no client left to wait for.
	b.Cleanup(func() {
		if err := env.Stop(); err != nil {
			b.Logf("stopping the control plane: %v", err)
		}
	})
	r.env = env
	w, err := optimistic.New(env.Client, env.Client, optimistic.WithMetrics(optimistic.NewMetrics()))
	if err != nil {
		b.Fatal(err)
	}
	r.writer = w
	kubeconfig, err := env.WriteKubeconfig(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	env.StartKwok(b, kubeconfig)
	return kubeconfig
}

// writeResult writes a benchmark's result as JSON where hack/benchreport reads it.
func (r *run) writeResult(out string, res any) {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		r.b.Fatal(err)
	}
	if err := os.WriteFile(out, data, 0o600); err != nil {
		r.b.Fatal(err)
	}
	r.logf("done; results in %s", out)
}

// simBinary is the homelab-sim binary: BENCH_SIM, or the one `make build` leaves in bin/.
func simBinary(b *testing.B) string {
	if v := os.Getenv(envSim); v != "" {
		return v
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	return root + "/bin/homelab-sim"
}

// outPath is BENCH_OUT, without which a benchmark of this package refuses to run.
func outPath(b *testing.B) string {
	out := os.Getenv(envOut)
	if out == "" {
		b.Fatal(envOut + " is not set: run this benchmark with `make bench`, which sets it and renders the report")
	}
	return out
}

// run is one benchmark run at one fleet size.
type run struct {
	b      *testing.B
	start  time.Time
	size   int
	reps   int
	boot   time.Duration
	env    *testenv.Env
	writer *optimistic.Writer // the load generator's own writes (a human editing specs)
	res    *perf.Result
	// notes is where note records what was left out or went wrong: the Notes of the
	// benchmark's result.
	notes *[]string
	// managerBin is the manager binary built for this run, when BENCH_MANAGER names none.
	managerBin string
	// profileDir is where the manager's profiles go ("" takes none).
	profileDir string
}

// logf prints progress at once (b.Logf would hold it until the end).
func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "  [%4.0fs machines=%d] %s\n", time.Since(r.start).Seconds(), r.size, fmt.Sprintf(format, args...))
}

func (r *run) note(format string, args ...any) {
	*r.notes = append(*r.notes, fmt.Sprintf(format, args...))
	r.logf("note: "+format, args...)
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// quiet waits until counter has seen no request for window (at most limit): the work that a
// phase started has settled.
func quiet(c *perf.Counter, window, limit time.Duration) {
	last, since := c.Total(), time.Now()
	testenv.Poll(limit, 100*time.Millisecond, func() bool {
		if n := c.Total(); n != last {
			last, since = n, time.Now()
			return false
		}
		return time.Since(since) >= window
	})
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(b *testing.B) string {
	b.Helper()
	issued.mu.Lock()
	defer issued.mu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		// A port closed here may come back from the next Listen before its process binds
		// it: never hand one out twice (a manager once got the same port for metrics and probes).
		if !issued.addrs[addr] {
			issued.addrs[addr] = true
			return addr
		}
	}
}

// issued is every address freeAddr handed out in this process.
var issued = struct {
	mu    sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// startProcess runs another program until the benchmark ends, its output kept for failures.
func startProcess(b *testing.B, name string, args ...string) *exec.Cmd {
	b.Helper()
	out := &testenv.SyncBuffer{}
	cmd := exec.Command(name, args...) //nolint:gosec // the project's own binary
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting %s: %v", name, err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if b.Failed() {
			s := out.String()
			b.Logf("%s output (last 3000 bytes):\n%s", name, s[max(0, len(s)-3000):])
		}
	})
	return cmd
}

func ctxFor(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
