package sim

import (
	"net/http"
	"time"
)

// MachineReport is one machine in the debug endpoint's answer.
type MachineReport struct {
	Name     string `json:"name"`
	Index    int    `json:"index"`
	Endpoint string `json:"endpoint"`
	// Phase is Off, Booting, Running or ShuttingDown.
	Phase     string `json:"phase"`
	NeverBoot bool   `json:"neverBoot,omitempty"`
	Counters
}

// Report describes every machine.
func (s *Sim) Report() []MachineReport {
	out := make([]MachineReport, 0, len(s.machines))
	for _, m := range s.machines {
		out = append(out, m.Report())
	}
	return out
}

// Report describes the machine.
func (m *Machine) Report() MachineReport {
	return MachineReport{
		Name: m.Name, Index: m.Index, Endpoint: m.Endpoint(), Phase: m.Phase(), NeverBoot: m.neverBoot,
		Counters: m.Counters(),
	}
}

// DebugHandler serves the simulator's state as JSON, for scripts and reliability checks:
//
//	GET  /debug/counters                        every machine: phase, command counts, history
//	GET  /debug/machines/{name}                 one machine
//	POST /debug/machines/{name}/bmc-errors?for=30s
//	                                            the machine's BMC answers errors for that long
//	POST /debug/machines/{name}/faults?kind=hang&for=30s
//	                                            the BMC misbehaves (error, hang, lie, garbage)
//
// Serve it on loopback only: it can break BMCs and it names their endpoints.
func (s *Sim) DebugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/counters", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"machines": s.Report()})
	})
	mux.HandleFunc("GET /debug/machines/{name}", func(w http.ResponseWriter, r *http.Request) {
		m := s.Machine(r.PathValue("name"))
		if m == nil {
			http.Error(w, "no such machine", http.StatusNotFound)
			return
		}
		writeJSON(w, http.StatusOK, m.Report())
	})
	mux.HandleFunc("POST /debug/machines/{name}/bmc-errors", func(w http.ResponseWriter, r *http.Request) {
		m := s.Machine(r.PathValue("name"))
		if m == nil {
			http.Error(w, "no such machine", http.StatusNotFound)
			return
		}
		d, err := time.ParseDuration(r.URL.Query().Get("for"))
		if err != nil || d < 0 {
			http.Error(w, "want ?for=DURATION, e.g. ?for=30s", http.StatusBadRequest)
			return
		}
		m.FailBMCFor(d)
		s.log.Info("BMC errors injected", "machine", m.Name, "for", d.String())
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /debug/machines/{name}/faults", func(w http.ResponseWriter, r *http.Request) {
		m := s.Machine(r.PathValue("name"))
		if m == nil {
			http.Error(w, "no such machine", http.StatusNotFound)
			return
		}
		d, err := time.ParseDuration(r.URL.Query().Get("for"))
		if err != nil || d < 0 {
			http.Error(w, "want ?kind=KIND&for=DURATION, e.g. ?kind=hang&for=30s", http.StatusBadRequest)
			return
		}
		kind := FaultKind(r.URL.Query().Get("kind"))
		if err := m.InjectFault(kind, d); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.log.Info("BMC fault injected", "machine", m.Name, "kind", string(kind), "for", d.String())
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
