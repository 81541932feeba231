package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Results of the counters.
const (
	resultSent    = "sent"
	resultStarted = "started"
	resultFailed  = "failed"
)

var (
	wakesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "homelab_agent_wakes_total",
		Help: "Wake requests this agent acted on, by segment and result: sent (the magic packets went) or failed (the send failed after the request was taken; it is not sent again).",
	}, []string{"segment", "result"})
	shutdownsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "homelab_agent_shutdowns_total",
		Help: "Shutdown requests of this agent's node it acknowledged, by result of the power-off it then ran: started or failed.",
	}, []string{"node", "result"})
)

func init() {
	// Served on the agent's metrics endpoint with controller-runtime's own metrics.
	ctrlmetrics.Registry.MustRegister(wakesTotal, shutdownsTotal)
}
