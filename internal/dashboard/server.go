// Package dashboard is `homelabctl dashboard`: a web page on the user's own machine, like
// `kubectl proxy`, that shows the Groups and Machines, their energy, what cluster-autoscaler sees
// and their latest Events, live. It reads through the user's kubeconfig and RBAC only, keeps
// watches open and sends the page a fresh snapshot (Server-Sent Events) after the watched objects
// change; the page never polls. With AllowPower it also sets a Machine's spec.online, through
// the same write path as `homelabctl power`.
package dashboard

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
	"github.com/homelab-autoscaler/homelab-autoscaler/internal/cli"
	pb "github.com/homelab-autoscaler/homelab-autoscaler/internal/cloudprovider/externalgrpc"
)

// Options configure a dashboard Server.
type Options struct {
	// Client reaches the cluster with the user's credentials: everything the page shows is read
	// through it, and power actions write through it.
	Client client.WithWatch
	// Namespace is the namespace shown; "" shows all.
	Namespace string
	// AllowPower adds power buttons to the page and accepts power actions; without it the page
	// has no buttons and a power action is refused (403).
	AllowPower bool
	// CloudProvider is a client of the cloud-provider gRPC server, to show what it tells
	// cluster-autoscaler; nil shows nothing of it.
	CloudProvider pb.CloudProviderClient
	// CallTimeout bounds each gRPC call (default 5s, cluster-autoscaler's).
	CallTimeout time.Duration
	// CAStatus names cluster-autoscaler's status ConfigMap; an empty name shows none.
	CAStatus types.NamespacedName
	// Now is the clock of the snapshots' ages and timelines (default time.Now).
	Now func() time.Time
}

// Quiet is how long the watched objects must stay unchanged before a snapshot is sent (a power-on
// writes a Machine several times within a second), and MaxDelay the longest a change waits for a
// snapshot while changes keep coming.
const (
	Quiet    = 250 * time.Millisecond
	MaxDelay = time.Second
)

// Server watches the cluster and serves the page. Build it with New, serve its Handler and call
// Run, which keeps the watches until its context ends.
type Server struct {
	opts Options
	// token is this process's secret that the page sends with every power action.
	token string

	groups, machines, events, caStatus *source
	sources                            []*source

	// changed and askCA hold at most one pending signal each: a burst of them is one.
	changed chan struct{}
	askCA   chan struct{}
	// building serializes snapshots, which the watches and the gRPC answers both trigger.
	building sync.Mutex
	// stopped is closed when Run returns, ending the streams.
	stopped chan struct{}
	running bool

	mu     sync.Mutex
	latest []byte
	subs   map[chan []byte]struct{}
	cloud  CloudProvider
}

// New checks opts and returns a Server that has not started watching.
func New(opts Options) (*Server, error) {
	if opts.Client == nil {
		return nil, errors.New("the dashboard needs a Kubernetes client")
	}
	if opts.Namespace != "" {
		if msgs := validation.IsDNS1123Label(opts.Namespace); len(msgs) > 0 {
			return nil, fmt.Errorf("namespace %q: %s", opts.Namespace, msgs[0])
		}
	}
	if ca := opts.CAStatus; ca.Name != "" || ca.Namespace != "" {
		if msgs := validation.IsDNS1123Label(ca.Namespace); len(msgs) > 0 {
			return nil, fmt.Errorf("cluster-autoscaler's status ConfigMap %q: namespace: %s", ca.String(), msgs[0])
		}
		if msgs := validation.IsDNS1123Subdomain(ca.Name); len(msgs) > 0 {
			return nil, fmt.Errorf("cluster-autoscaler's status ConfigMap %q: name: %s", ca.String(), msgs[0])
		}
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("making the power actions' token: %w", err)
	}
	s := &Server{
		opts: opts, token: base64.RawURLEncoding.EncodeToString(secret),
		changed: make(chan struct{}, 1), askCA: make(chan struct{}, 1), stopped: make(chan struct{}),
		subs: map[chan []byte]struct{}{}, cloud: CloudProvider{Configured: opts.CloudProvider != nil, Groups: []cli.CheckGroup{}},
	}
	ns := client.InNamespace(opts.Namespace)
	var err error
	if s.groups, err = newSource(opts.Client, "Groups", func() client.ObjectList { return &infrav1.GroupList{} }, &infrav1.Group{}, s.poke, ns); err != nil {
		return nil, err
	}
	if s.machines, err = newSource(opts.Client, "Machines", func() client.ObjectList { return &infrav1.MachineList{} }, &infrav1.Machine{}, s.poke, ns); err != nil {
		return nil, err
	}
	if s.events, err = newSource(opts.Client, "Events", func() client.ObjectList { return &eventsv1.EventList{} }, &eventsv1.Event{}, s.poke, ns); err != nil {
		return nil, err
	}
	s.sources = []*source{s.groups, s.machines, s.events}
	if ca := opts.CAStatus; ca.Name != "" {
		if s.caStatus, err = newSource(opts.Client, "cluster-autoscaler's status ConfigMap", func() client.ObjectList { return &corev1.ConfigMapList{} },
			&corev1.ConfigMap{}, s.poke, client.InNamespace(ca.Namespace), client.MatchingFields{"metadata.name": ca.Name}); err != nil {
			return nil, err
		}
		s.sources = append(s.sources, s.caStatus)
	}
	return s, nil
}

// Run watches the cluster and sends snapshots until ctx ends, then ends the page's streams. A
// Server runs once.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("the dashboard is already running")
	}
	s.running = true
	s.mu.Unlock()
	defer close(s.stopped)

	var wg sync.WaitGroup
	for _, src := range s.sources {
		wg.Go(func() { src.run(ctx) })
		wg.Go(func() {
			// A source with nothing to list has no event to announce that it has listed.
			select {
			case <-src.synced.Done():
				s.poke()
			case <-ctx.Done():
			}
		})
	}
	if s.opts.CloudProvider != nil {
		wg.Go(func() { s.followCloudProvider(ctx) })
	}
	s.sendSnapshots(ctx)
	wg.Wait()
	return nil
}

// poke says the watched objects changed.
func (s *Server) poke() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// sendSnapshots sends a snapshot once the changes of a burst have gathered (Quiet after the last,
// at most MaxDelay after the first), and asks the gRPC server again.
func (s *Server) sendSnapshots(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
		}
		quiet, limit := time.NewTimer(Quiet), time.NewTimer(MaxDelay)
	gather:
		for {
			select {
			case <-ctx.Done():
				quiet.Stop()
				limit.Stop()
				return
			case <-s.changed:
				quiet.Reset(Quiet)
			case <-quiet.C:
				break gather
			case <-limit.C:
				break gather
			}
		}
		quiet.Stop()
		limit.Stop()
		if s.publish(ctx) {
			select {
			case s.askCA <- struct{}{}:
			default:
			}
		}
	}
}

// followCloudProvider asks the gRPC server after each snapshot and sends another with its answer.
func (s *Server) followCloudProvider(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.askCA:
		}
		view := askCloudProvider(ctx, s.opts.CloudProvider, s.opts.CallTimeout, s.opts.Now())
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.cloud = view
		s.mu.Unlock()
		s.publish(ctx)
	}
}

// publish builds a snapshot and sends it to every open page. It sends nothing until every
// watch has listed (or failed to), so that the first page is not a half-loaded one.
func (s *Server) publish(ctx context.Context) bool {
	s.building.Lock()
	defer s.building.Unlock()
	for _, src := range s.sources {
		if !src.ready() {
			return false
		}
	}
	w := &watched{
		groups: items[infrav1.Group](s.groups), machines: items[infrav1.Machine](s.machines),
		events: items[eventsv1.Event](s.events),
	}
	caProblem, caReady := "", false
	if s.caStatus != nil {
		if cms := items[corev1.ConfigMap](s.caStatus); len(cms) > 0 {
			w.caStatus = &cms[0]
		}
		caProblem, caReady = s.caStatus.problem(), s.caStatus.listed()
	}
	snap, problems := build(ctx, s.opts.Client, w, s.opts.Namespace, s.opts.Now())
	snap.AllowPower = s.opts.AllowPower
	snap.CAStatus = caStatusOf(s.opts.CAStatus, w.caStatus, caProblem, caReady)
	for _, src := range []*source{s.groups, s.machines} {
		if p := src.problem(); p != "" {
			problems = append(problems, src.what+": "+p)
		}
	}
	snap.EventsProblem = s.events.problem()
	snap.Problems = append([]string{}, problems...)
	s.mu.Lock()
	defer s.mu.Unlock()
	snap.CloudProvider = s.cloud
	data, err := json.Marshal(snap)
	if err != nil {
		// Nothing in a snapshot fails to encode; keep the last one rather than send a broken one.
		return false
	}
	s.latest = data
	for ch := range s.subs {
		// Each page needs only the newest snapshot: replace one it has not read yet.
		select {
		case <-ch:
		default:
		}
		ch <- data
	}
	return true
}

// subscribe returns a channel that receives the latest snapshot (at once, when there is one) and
// every later one, and the function that ends the subscription.
func (s *Server) subscribe() (<-chan []byte, func()) {
	ch := make(chan []byte, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs[ch] = struct{}{}
	if s.latest != nil {
		ch <- s.latest
	}
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subs, ch)
	}
}

// snapshot is the latest snapshot's JSON, nil before the first.
func (s *Server) snapshot() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest
}
