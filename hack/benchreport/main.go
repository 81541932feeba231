// Command benchreport runs the benchmarks of internal/testing/perf, each in a process of its own
// (the fleet benchmark once per fleet size, the time-to-capacity and the observation benchmarks
// once), and writes docs/performance.md with its tables and SVG plots from the results. `make
// bench` runs it; BENCH_SIZES and BENCH_REPS choose the sizes and repetitions, BENCH_PARTS the
// benchmarks, BENCH_PROFILE_SIZES the sizes at which the manager is profiled (its profiles go to
// the assets folder's profiles/, their biggest consumers into the report). The manager runs as
// the binary a release ships, built here. A part left out keeps its results from the last report's results.json. With
// -render it measures nothing and writes the report and its plots again from a results.json
// (`make bench-report`).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/homelab-autoscaler/homelab-autoscaler/internal/testing/perf"
)

// mibPerMachine and baseMiB estimate what one size needs (control plane, simulator and
// manager together), to leave out sizes the machine cannot hold rather than swap.
const (
	mibPerMachine = 1.5
	baseMiB       = 3072
)

func main() {
	sizes := flag.String("sizes", envOr("BENCH_SIZES", "10,100,1000,5000,10000"), "Fleet sizes, comma-separated (env BENCH_SIZES).")
	profileSizes := flag.String("profile-sizes", envOr("BENCH_PROFILE_SIZES", "5000"),
		"Fleet sizes at which the manager's CPU and heap are profiled, comma-separated; empty for none (env BENCH_PROFILE_SIZES).")
	reps := flag.Int("reps", envInt("BENCH_REPS", 3), "Repetitions of each measurement (env BENCH_REPS).")
	out := flag.String("out", "docs/performance.md", "The report.")
	assets := flag.String("assets", "docs/performance", "Folder of the report's plots and raw results.")
	from := flag.String("render", "", "Render the report again from this results.json instead of measuring.")
	parts := flag.String("parts", envOr("BENCH_PARTS", strings.Join(allParts, ",")),
		"Benchmarks to run, comma-separated: fleet, capacity, observation (env BENCH_PARTS); the others keep the last report's results.")
	flag.Parse()
	if *from != "" {
		if err := render(*from, *out, *assets); err != nil {
			fmt.Fprintln(os.Stderr, "benchreport:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*sizes, *profileSizes, *parts, *reps, *out, *assets); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

// The benchmarks benchreport runs, by their name in -parts.
const (
	partFleet       = "fleet"
	partCapacity    = "capacity"
	partObservation = "observation"
)

var allParts = []string{partFleet, partCapacity, partObservation}

func run(sizeList, profileList, partList string, reps int, out, assets string) error {
	began := time.Now()
	parts := map[string]bool{}
	for _, p := range strings.Split(partList, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(allParts, p) {
			return fmt.Errorf("part %q: want one of %s", p, strings.Join(allParts, ", "))
		}
		parts[p] = true
	}
	sizes, err := parseSizes(sizeList)
	if err != nil {
		return err
	}
	if parts[partFleet] && len(sizes) == 0 {
		return errors.New("no fleet size given")
	}
	profiled, err := parseSizes(profileList)
	if err != nil {
		return err
	}
	if reps < 1 {
		return errors.New("repetitions must be at least 1")
	}
	rep := &report{}
	if !parts[partFleet] || !parts[partCapacity] || !parts[partObservation] {
		// The parts not run keep what the last report measured.
		last := filepath.Join(assets, "results.json")
		if data, err := os.ReadFile(last); err == nil {
			if err := json.Unmarshal(data, rep); err != nil {
				return fmt.Errorf("%s: %w", last, err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if parts[partFleet] {
		rep.Machine, rep.Started, rep.Reps, rep.Results, rep.Skipped, rep.Notes = describeMachine(), began.UTC(), reps, nil, nil, nil
		fmt.Printf("benchmark: sizes %v, %d repetitions, on %s\n", sizes, reps, rep.Machine.summary())
	}

	tmp, err := os.MkdirTemp("", "benchreport-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	simBin, testBin, managerBin := filepath.Join(tmp, "homelab-sim"), filepath.Join(tmp, "perf.test"), filepath.Join(tmp, "homelab-autoscaler")
	fmt.Println("benchmark: building the manager (as a release does), homelab-sim and the benchmark")
	release := command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", managerBin, "./cmd/homelab-autoscaler")
	release.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := release.Run(); err != nil {
		return fmt.Errorf("building the manager: %w", err)
	}
	if err := command("go", "build", "-o", simBin, "./cmd/homelab-sim").Run(); err != nil {
		return fmt.Errorf("building homelab-sim: %w", err)
	}
	profileDir, err := filepath.Abs(filepath.Join(assets, "profiles"))
	if err != nil {
		return err
	}
	bins := benchBinaries{test: testBin, sim: simBin, manager: managerBin}
	if err := command("go", "test", "-c", "-o", testBin, "./internal/testing/perf").Run(); err != nil {
		return fmt.Errorf("building the benchmark: %w", err)
	}

	if parts[partFleet] {
		for _, size := range sizes {
			if avail := memAvailableMiB(); avail > 0 && float64(size)*mibPerMachine+baseMiB > avail {
				msg := fmt.Sprintf("%d machines left out: %.0f MiB of memory available, about %.0f MiB needed", size, avail, float64(size)*mibPerMachine+baseMiB)
				fmt.Println("benchmark:", msg)
				rep.Skipped = append(rep.Skipped, msg)
				continue
			}
			fmt.Printf("benchmark: %d machines\n", size)
			dir := ""
			if slices.Contains(profiled, size) {
				dir = profileDir
			}
			res, err := runSize(bins, tmp, dir, size, reps)
			if err != nil {
				msg := fmt.Sprintf("%d machines failed: %v", size, err)
				fmt.Println("benchmark:", msg)
				rep.Skipped = append(rep.Skipped, msg)
				continue
			}
			topConsumers(res, profileDir)
			rep.Results = append(rep.Results, *res)
			fmt.Printf("benchmark: %d machines done in %s\n", size, res.Took.Round(time.Second))
		}
		rep.Took = time.Since(began)
		rep.Machine.LoadAfter = loadAverage()
	}
	failed := false
	if parts[partCapacity] {
		fmt.Println("benchmark: time to capacity with a machine that never boots")
		pr := startPart()
		res := &perf.Capacity{}
		err := runBench(testBin, "BenchmarkCapacity", filepath.Join(tmp, "capacity.json"),
			[]string{"BENCH_REPS=" + strconv.Itoa(reps), "BENCH_SIM=" + simBin, "BENCH_MANAGER=" + managerBin}, res)
		rep.Capacity, rep.CapacityRun = nil, pr.done(err)
		if err == nil {
			rep.Capacity = res
		}
		failed = failed || err != nil
	}
	if parts[partObservation] {
		machines := envInt("BENCH_OBSERVE_MACHINES", 1000)
		fmt.Printf("benchmark: observation at rest, %d machines\n", machines)
		pr := startPart()
		res := &perf.Observation{}
		var err error
		if avail := memAvailableMiB(); avail > 0 && float64(machines)*mibPerMachine+baseMiB > avail {
			err = fmt.Errorf("%.0f MiB of memory available, about %.0f MiB needed for %d machines", avail, float64(machines)*mibPerMachine+baseMiB, machines)
		} else {
			err = runBench(testBin, "BenchmarkObservation", filepath.Join(tmp, "observation.json"), []string{"BENCH_SIM=" + simBin, "BENCH_MANAGER=" + managerBin}, res)
		}
		rep.Observation, rep.ObservationRun = nil, pr.done(err)
		if err == nil {
			rep.Observation = res
		}
		failed = failed || err != nil
	}
	if err := rep.write(out, assets); err != nil {
		return err
	}
	fmt.Printf("benchmark: wrote %s and %s/ after %s\n", out, assets, time.Since(began).Round(time.Second))
	if parts[partFleet] && len(rep.Results) == 0 {
		return errors.New("no fleet size was measured")
	}
	if failed {
		return errors.New("a benchmark failed: see the report")
	}
	return nil
}

// partRun says when and where a benchmark other than the fleet's ran: a report may hold results
// of different runs.
type partRun struct {
	Started    time.Time     `json:"started"`
	Took       time.Duration `json:"took"`
	Commit     string        `json:"commit"`
	Dirty      bool          `json:"dirty"`
	LoadBefore string        `json:"loadBefore"`
	LoadAfter  string        `json:"loadAfter"`
	// Failed says why the benchmark gave no result.
	Failed string `json:"failed,omitempty"`
}

func startPart() *partRun {
	m := describeMachine()
	return &partRun{Started: time.Now().UTC(), Commit: m.Commit, Dirty: m.Dirty, LoadBefore: m.LoadBefore}
}

// done ends the part's run; err is its failure, printed and recorded.
func (p *partRun) done(err error) *partRun {
	p.Took, p.LoadAfter = time.Since(p.Started), loadAverage()
	if err != nil {
		fmt.Println("benchmark: failed:", err)
		// The report keeps the first line; the benchmark's output was printed above.
		p.Failed, _, _ = strings.Cut(err.Error(), "\n")
	}
	return p
}

// render writes the report from the results of an earlier run.
func render(from, out, assets string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	rep := &report{}
	if err := json.Unmarshal(data, rep); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	return rep.write(out, assets)
}

// benchBinaries are the programs a benchmark runs: itself, homelab-sim and the manager.
type benchBinaries struct{ test, sim, manager string }

// runSize runs the fleet benchmark at one size and reads its result; profileDir, when not
// empty, is where the manager's profiles go.
func runSize(bins benchBinaries, tmp, profileDir string, size, reps int) (*perf.Result, error) {
	res := &perf.Result{}
	env := []string{"BENCH_SIZE=" + strconv.Itoa(size), "BENCH_REPS=" + strconv.Itoa(reps), "BENCH_SIM=" + bins.sim, "BENCH_MANAGER=" + bins.manager}
	if profileDir != "" {
		env = append(env, "BENCH_PROFILE_DIR="+profileDir)
	}
	err := runBench(bins.test, "BenchmarkFleet", filepath.Join(tmp, fmt.Sprintf("result-%d.json", size)), env, res)
	return res, err
}

// parseSizes reads a comma-separated list of fleet sizes ("" is none).
func parseSizes(list string) ([]int, error) {
	var sizes []int
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(strings.ReplaceAll(s, "_", ""))
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 {
			return nil, fmt.Errorf("fleet size %q: want a number of at least 2", s)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// runBench runs one benchmark of the package in a process of its own, with env added to this
// process's environment, and reads the JSON it writes to file into res.
func runBench(testBin, bench, file string, env []string, res any) error {
	cmd := exec.Command(testBin, "-test.run=^$", "-test.bench=^"+bench+"$", "-test.benchtime=1x", "-test.timeout=90m") //nolint:gosec // built above
	cmd.Dir = "internal/testing/perf"
	cmd.Env = append(append(os.Environ(), "BENCH_OUT="+file), env...)
	// The benchmark prints its progress on stderr; the test framework's own lines (and a
	// failure's logs) come on stdout.
	cmd.Stderr = os.Stdout
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	var tail []string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		// Control-plane logs of a failed run are long JSON lines: keep them for the error only.
		if !strings.HasPrefix(strings.TrimSpace(line), "{") {
			fmt.Println("  " + line)
		}
		tail = append(tail, line)
		if len(tail) > 40 {
			tail = tail[1:]
		}
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%w; last output:\n%s", err, strings.Join(tail, "\n"))
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, res); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

func command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...) //nolint:gosec // the go tool with fixed arguments
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd
}

// machine describes where the benchmark ran.
type machine struct {
	CPUs       int     `json:"cpus"`
	CPUModel   string  `json:"cpuModel"`
	MemoryGiB  float64 `json:"memoryGiB"`
	Kernel     string  `json:"kernel"`
	GoVersion  string  `json:"goVersion"`
	Commit     string  `json:"commit"`
	Dirty      bool    `json:"dirty"`
	LoadBefore string  `json:"loadBefore"`
	LoadAfter  string  `json:"loadAfter"`
	Assets     string  `json:"assets"`
	GoOS       string  `json:"goos"`
}

func (m machine) summary() string {
	return fmt.Sprintf("%d CPUs (%s), %.1f GiB, %s", m.CPUs, m.CPUModel, m.MemoryGiB, m.GoVersion)
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GoOS: runtime.GOOS + "/" + runtime.GOARCH, LoadBefore: loadAverage()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	m.MemoryGiB = meminfoMiB("MemTotal") / 1024
	if v, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(v))
	}
	if v, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(v))
	}
	if v, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(v))
	}
	if v, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)docs/performance.md", ":(exclude)docs/performance").Output(); err == nil {
		m.Dirty = len(strings.TrimSpace(string(v))) > 0
	}
	m.Assets = filepath.Base(os.Getenv("KUBEBUILDER_ASSETS"))
	return m
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func memAvailableMiB() float64 { return meminfoMiB("MemAvailable") }

// meminfoMiB reads a line of /proc/meminfo, in MiB; 0 when unknown.
func meminfoMiB(name string) float64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == name {
			kib, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kib / 1024
		}
	}
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}
