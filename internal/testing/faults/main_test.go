package faults

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/testenv"
)

var (
	env        *testenv.Env
	managerBin string

	seedFlag = flag.Uint64("seed", 0, "Seed of every random choice (kill points, actions, faults); 0 takes $FAULTS_SEED, else the clock. Printed at the start, to replay a run.")
	soakFlag = flag.Duration("soak", 0, "Run the soak for this long (make soak); without it the soak runs a short round inside the other tests.")
	seed     uint64
)

func TestMain(m *testing.M) {
	flag.Parse()
	seed = *seedFlag
	if seed == 0 {
		if s, err := strconv.ParseUint(os.Getenv("FAULTS_SEED"), 10, 64); err == nil {
			seed = s
		}
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	fmt.Printf("faults: seed %d (replay: FAULTS_SEED=%d, or -seed %d)\n", seed, seed, seed)
	// One folder per work tree, rebuilt every run: nothing accumulates in /tmp.
	root, err := testenv.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("homelab-autoscaler-faults-%x", sha256.Sum256([]byte(root)))[:48])
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	if managerBin, err = BuildManager(dir); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	testenv.RunRestartable(m, func(e *testenv.Env) { env = e })
}

// rng is the random source of one stream of choices: the seed and the stream's number, so
// that parallel runs do not disturb each other's sequence.
func rng(stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }

// kubeconfig writes an administrator kubeconfig for the manager processes and kwok.
func kubeconfig(t *testing.T) string {
	t.Helper()
	path, err := env.WriteKubeconfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// report fails the test for every violation, naming the seed to replay it.
func report(t *testing.T, w *World) {
	t.Helper()
	if v := w.Stats.Violations(); len(v) > 0 {
		t.Errorf("seed %d: %d invariant violations:\n%s", seed, len(v), w.Stats.Summary())
	}
}
