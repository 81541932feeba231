package agent

// The counters, for the tests to read.
var (
	WakesTotal     = wakesTotal
	ShutdownsTotal = shutdownsTotal
)
