package sim

import (
	"fmt"
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
	// Watts is what the machine draws now; Load its load (0 to 1).
	Watts float64 `json:"watts"`
	Load  float64 `json:"load"`
	// PlugOn says whether the smart plug of a machine behind one is on.
	PlugOn *bool `json:"plugOn,omitempty"`
	Counters
}

// EnergyReport is the debug endpoint's answer about a machine's energy.
type EnergyReport struct {
	Name string `json:"name"`
	// From and To are the interval asked for; Since is when the machine's draw history begins
	// (nothing before it counts).
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	Since time.Time `json:"since"`
	// Joules is the energy drawn in the interval; Watts the draw now.
	Joules float64 `json:"joules"`
	Watts  float64 `json:"watts"`
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
	r := MachineReport{
		Name: m.Name, Index: m.Index, Endpoint: m.Endpoint(), Phase: m.Phase(), NeverBoot: m.neverBoot,
		KubeletHung: hung, KubeletHangSticky: sticky, NodeLeftNotReady: m.nodeLeftByCut(),
		Watts: m.Watts(), Load: m.Load(), Counters: m.Counters(),
	}
	if m.sim.cfg.Protocol == ProtocolShelly {
		on := m.PlugOn()
		r.PlugOn = &on
	}
	return r
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
//	POST /debug/machines/{name}/load?fraction=0.5
//	                                            the machine's load (0 idle to 1 full), which sets
//	                                            its draw while it is on
//	GET  /debug/machines/{name}/energy?from=RFC3339&to=RFC3339
//	                                            the energy the machine drew between from (default:
//	                                            the start of its history) and to (default: now),
//	                                            in joules, and its draw now, in watts
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
	mux.HandleFunc("POST /debug/machines/{name}/load", machine(func(w http.ResponseWriter, r *http.Request, m *Machine) {
		f, err := strconv.ParseFloat(r.URL.Query().Get("fraction"), 64)
		if err == nil {
			err = m.SetLoad(f)
		}
		if err != nil {
			http.Error(w, "want ?fraction=F with F from 0 (idle) to 1 (full load), e.g. ?fraction=0.5", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /debug/machines/{name}/energy", machine(func(w http.ResponseWriter, r *http.Request, m *Machine) {
		since, now := m.EnergySince(), s.now()
		from, err := queryTime(r, "from", since)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		to, err := queryTime(r, "to", now)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if to.Before(from) {
			http.Error(w, "to is before from", http.StatusBadRequest)
			return
		}
		writeJSON(w, http.StatusOK, EnergyReport{
			Name: m.Name, From: from, To: to, Since: since,
			Joules: m.EnergyBetween(from, to), Watts: m.Watts(),
		})
	}))
	return mux
}

// queryTime reads an RFC 3339 time (fractional seconds allowed) from the query, or def when the
// query has none.
func queryTime(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s must be an RFC 3339 time such as 2025-01-02T15:04:05.5Z, not %q", name, v)
	}
	return t, nil
}
