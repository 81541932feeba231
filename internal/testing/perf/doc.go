// Package perf measures the manager against a real control plane: gRPC latency, the time from
// a scale-up to the power-on commands and to Ready machines, API requests per machine, CPU and
// memory, and reconcile latency under a burst of spec changes. The measurements are a
// benchmark (BenchmarkFleet, one fleet size per run) that writes a Result as JSON;
// hack/benchreport runs it at every size and renders docs/performance.md from the results.
//
// The manager under measurement is the binary users run, as a process of its own: its API
// requests are counted by a reverse proxy in front of the kube-apiserver, its conflicts and heap
// read from its /metrics, its CPU and resident memory from /proc.
//
// The package's non-test code is what the benchmark and the renderer share: the result types,
// the statistics, the request counter and its proxy, the metrics scraper and the process
// sampler.
package perf
