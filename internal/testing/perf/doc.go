// Package perf measures the manager against a real control plane: gRPC latency, the time from
// a scale-up to the power-on commands and to Ready machines, API requests per machine, CPU and
// memory, and reconcile latency under a burst of spec changes. The measurements are a
// benchmark (BenchmarkFleet, one fleet size per run) that writes a Result as JSON;
// hack/benchreport runs it at every size and renders docs/performance.md from the results.
//
// The package's non-test code is what the benchmark and the renderer share: the result types,
// the statistics and the request counter.
package perf
