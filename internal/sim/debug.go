package sim

import (
	"net/http"
	"strconv"
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
	// KubeletHung says the machine's kubelet hangs (or will on its next boot);
	// KubeletHangSticky that the hang survives power cycles.
	KubeletHung       bool `json:"kubeletHung,omitempty"`
	KubeletHangSticky bool `json:"kubeletHangSticky,omitempty"`
	// NodeLeftNotReady says a power cut left the Node of the machine, off or booting, NotReady.
	NodeLeftNotReady bool `json:"nodeLeftNotReady,omitempty"`
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
	hung, sticky := m.KubeletHang()
	return MachineReport{
		Name: m.Name, Index: m.Index, Endpoint: m.Endpoint(), Phase: m.Phase(), NeverBoot: m.neverBoot,
		KubeletHung: hung, KubeletHangSticky: sticky, NodeLeftNotReady: m.nodeLeftByCut(),
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
//	POST /debug/machines/{name}/power-cut?node=not-ready
//	                                            the machine's power drops (its Node stays
//	                                            NotReady, or with node=gone is deleted)
//	POST /debug/power-cut?node=not-ready        every machine that is on loses power; the
//	                                            answer is {"cut": N}
//	POST /debug/machines/{name}/power-button    an off machine boots without a BMC command
//	POST /debug/machines/{name}/kubelet-hang?sticky=false
//	                                            the kubelet hangs: BMC On, Node NotReady (sticky:
//	                                            on every boot, until clear-faults)
//	POST /debug/machines/{name}/clear-faults    the kubelet hang ends
//
// Serve it on loopback only: it can break BMCs and it names their endpoints.
func (s *Sim) DebugHandler() http.Handler {
	mux := http.NewServeMux()
	// machine handles a request about one machine, answering 404 for an unknown one.
	machine := func(h func(http.ResponseWriter, *http.Request, *Machine)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			m := s.Machine(r.PathValue("name"))
			if m == nil {
				http.Error(w, "no such machine", http.StatusNotFound)
				return
			}
			h(w, r, m)
		}
	}
	mux.HandleFunc("GET /debug/counters", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"machines": s.Report()})
	})
	mux.HandleFunc("GET /debug/machines/{name}", machine(func(w http.ResponseWriter, _ *http.Request, m *Machine) {
		writeJSON(w, http.StatusOK, m.Report())
	}))
	mux.HandleFunc("POST /debug/machines/{name}/bmc-errors", machine(func(w http.ResponseWriter, r *http.Request, m *Machine) {
		d, err := time.ParseDuration(r.URL.Query().Get("for"))
		if err != nil || d < 0 {
			http.Error(w, "want ?for=DURATION, e.g. ?for=30s", http.StatusBadRequest)
			return
		}
		m.FailBMCFor(d)
		s.log.Info("BMC errors injected", "machine", m.Name, "for", d.String())
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /debug/machines/{name}/faults", machine(func(w http.ResponseWriter, r *http.Request, m *Machine) {
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
	}))
	mux.HandleFunc("POST /debug/machines/{name}/power-cut", machine(func(w http.ResponseWriter, r *http.Request, m *Machine) {
		node, err := parseNodeAfterCut(r.URL.Query().Get("node"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		m.CutPower(node)
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /debug/power-cut", func(w http.ResponseWriter, r *http.Request) {
		node, err := parseNodeAfterCut(r.URL.Query().Get("node"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"cut": s.CutPowerAll(node)})
	})
	mux.HandleFunc("POST /debug/machines/{name}/power-button", machine(func(w http.ResponseWriter, _ *http.Request, m *Machine) {
		m.PressPowerButton()
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /debug/machines/{name}/kubelet-hang", machine(func(w http.ResponseWriter, r *http.Request, m *Machine) {
		sticky := false
		if v := r.URL.Query().Get("sticky"); v != "" {
			var err error
			if sticky, err = strconv.ParseBool(v); err != nil {
				http.Error(w, "want ?sticky=true or ?sticky=false, not "+strconv.Quote(v), http.StatusBadRequest)
				return
			}
		}
		m.HangKubelet(sticky)
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /debug/machines/{name}/clear-faults", machine(func(w http.ResponseWriter, _ *http.Request, m *Machine) {
		m.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	}))
	return mux
}
