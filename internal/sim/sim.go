package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Sim is a running virtual homelab.
type Sim struct {
	cfg    Config
	client client.Client
	log    *slog.Logger

	machines []*Machine
	servers  []server
	// wakePort is the UDP port the machines' network cards listen on for magic packets (0: none).
	wakePort int

	// now is the clock of the machines' draw history.
	now func() time.Time

	// ctx bounds every API call the machines make; Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	closeOnce sync.Once
}

// server is one BMC's listener.
type server interface {
	// close stops serving; requests in flight get a short grace period.
	close(ctx context.Context) error
}

// New builds the machines of cfg, each with fresh random BMC credentials. Nothing listens until
// Start. c creates and deletes the Nodes; it should not be a caching client.
func New(cfg Config, c client.Client, log *slog.Logger) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sim{cfg: cfg, client: c, log: log, ctx: ctx, cancel: cancel, now: time.Now}
	for i := range cfg.Machines {
		password, err := randomPassword()
		if err != nil {
			cancel()
			return nil, err
		}
		m := &Machine{
			Index: i, Name: cfg.MachineName(i), ProviderID: cfg.providerID(i),
			Username: cfg.Username, Password: password,
			sim: s, neverBoot: slices.Contains(cfg.NeverBoot, i),
			profile: profileOf(&cfg, cfg.providerID(i)),
			// A plug starts off, like the machine behind it.
			relay: cfg.Protocol != ProtocolShelly,
		}
		m.noteDraw()
		s.machines = append(s.machines, m)
	}
	for _, f := range cfg.Flap {
		s.machines[f.Index].flapFor = f.For
	}
	for _, f := range cfg.LateBoot {
		s.machines[f.Index].lateBy = f.For
	}
	for _, f := range cfg.PowerCut {
		m := s.machines[f.Index]
		m.cutAfter = append(m.cutAfter, f.For)
	}
	for _, i := range cfg.KubeletHang {
		m := s.machines[i]
		m.hung, m.hangSticky = true, true
		m.counters.KubeletHangs = 1
	}
	return s, nil
}

// randomPassword is 10 random bytes in hex: 20 characters (80 bits), the longest password IPMI
// v2.0 allows, so that one form serves both protocols.
func randomPassword() (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a BMC password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Machines returns the machines, by index.
func (s *Sim) Machines() []*Machine { return s.machines }

// Machine returns the machine called name, or nil.
func (s *Sim) Machine(name string) *Machine {
	for _, m := range s.machines {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Start takes over Nodes that earlier runs left registered (those machines start on: a
// machine keeps running while its BMC restarts), then opens every BMC's listener. When Start
// returns, every BMC answers.
func (s *Sim) Start(ctx context.Context) error {
	if err := s.adopt(ctx); err != nil {
		return err
	}
	start := time.Now()
	for _, f := range s.cfg.bmcFaults() {
		m := s.machines[f.Index]
		m.mu.Lock()
		if m.faultEnds == nil {
			m.faultEnds = map[FaultKind]time.Time{}
		}
		m.faultEnds[f.kind()] = start.Add(f.For)
		m.mu.Unlock()
	}
	for _, m := range s.machines {
		var (
			srv      server
			endpoint string
			err      error
		)
		switch s.cfg.Protocol {
		case ProtocolIPMI:
			srv, endpoint, err = serveIPMI(m, s.cfg.BMCAddress)
		case ProtocolShelly:
			srv, endpoint, err = servePlug(m, s.cfg.BMCAddress)
		default:
			srv, endpoint, err = serveRedfish(m, s.cfg.BMCAddress)
		}
		if err != nil {
			return errors.Join(fmt.Errorf("machine %s: starting its BMC: %w", m.Name, err), s.Close())
		}
		s.servers = append(s.servers, srv)
		m.mu.Lock()
		m.endpoint = endpoint
		m.mu.Unlock()
	}
	if s.cfg.WakeVia != "" {
		l, port, err := s.serveWake(s.cfg.BMCAddress)
		if err != nil {
			return errors.Join(err, s.Close())
		}
		s.servers, s.wakePort = append(s.servers, l), port
	}
	for _, f := range s.cfg.PowerButton {
		m := s.machines[f.Index]
		m.mu.Lock()
		m.armButtonPress(time.Until(start.Add(f.For)))
		m.mu.Unlock()
	}
	s.log.Info("BMCs listening", "machines", len(s.machines), "protocol", string(s.cfg.Protocol), "address", s.cfg.BMCAddress)
	return nil
}

// adopt marks the machines whose Node exists (with their provider ID) as running, then makes
// each Node as its machine wants it: none for a never-booting machine, NotReady for a hung
// kubelet, Ready again for one the last run held NotReady.
func (s *Sim) adopt(ctx context.Context) error {
	list := &corev1.NodeList{}
	if err := s.client.List(ctx, list); err != nil {
		return fmt.Errorf("listing Nodes: %w", err)
	}
	byName := map[string]*corev1.Node{}
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	adopted := 0
	for _, m := range s.machines {
		core, ok := byName[m.Name]
		if !ok || core.Spec.ProviderID != m.ProviderID {
			continue
		}
		m.reg.mu.Lock()
		m.reg.state, m.reg.uid = nodeReady, core.UID
		if !kwokManaged(core) {
			// Held NotReady (or flapping) when the last run stopped.
			m.reg.state = nodeNotReady
		}
		m.reg.mu.Unlock()
		m.mu.Lock()
		m.phase, m.booted, m.relay = phaseRunning, true, true
		m.noteDraw()
		m.armPowerCuts()
		m.mu.Unlock()
		adopted++
	}
	if adopted > 0 {
		s.log.Info("machines already running: their Nodes exist", "machines", adopted)
	}
	for _, m := range s.machines {
		m.syncNode()
	}
	return nil
}

// Close stops every BMC and cancels the boots and shutdowns in progress; when it returns, the
// simulator makes no more API calls. The cluster objects (Nodes included) stay as they are.
func (s *Sim) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		s.cancel()
		for _, m := range s.machines {
			m.stop()
			m.stopSync()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, srv := range s.servers {
			wg.Go(func() {
				if err := srv.close(ctx); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	})
	return errors.Join(errs...)
}

// stopped reports whether Close was called.
func (s *Sim) stopped() bool { return s.ctx.Err() != nil }
