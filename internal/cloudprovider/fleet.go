package cloudprovider

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	infrav1 "github.com/homelab-autoscaler/homelab-autoscaler/api/v1alpha1"
)

// fleet follows the machines' informer and keeps what the read paths need without a List
// (which copies every object it returns): every machine by key, and per group its members and
// how many are desired on (the target size).
//
// The machines are the informer's own objects, shared with the cache: they are never modified,
// only replaced by newer versions, and nothing here or in the callers may modify them.
type fleet struct {
	mu       sync.RWMutex
	machines map[types.NamespacedName]*infrav1.Machine
	groups   map[types.NamespacedName]*groupMembers
	// versions numbers group changes across the fleet, so that a group deleted and made
	// again never reuses a version.
	versions uint64
	// visible is told every event after the fleet has taken it in, so a writer that waited
	// for its write there finds it here too.
	visible *visibility
}

// groupMembers are one group's machines by name, and how many are desired on.
type groupMembers struct {
	byName map[string]*infrav1.Machine
	on     int32
	// version changes with every change of the group's members; derived is kept until then.
	version uint64
	derived *derivedValue
}

type derivedValue struct {
	version uint64
	value   any
}

// tally counts one group's members.
type tally struct {
	members int32
	on      int32
}

func newFleet(visible *visibility) *fleet {
	return &fleet{
		machines: map[types.NamespacedName]*infrav1.Machine{},
		groups:   map[types.NamespacedName]*groupMembers{},
		visible:  visible,
	}
}

// handler is the machines' informer event handler.
func (f *fleet) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { f.observe(o) },
		UpdateFunc: func(_, o any) { f.observe(o) },
		DeleteFunc: f.forget,
	}
}

func (f *fleet) observe(o any) {
	n, ok := o.(*infrav1.Machine)
	if !ok {
		return
	}
	f.mu.Lock()
	key := types.NamespacedName{Namespace: n.Namespace, Name: n.Name}
	f.remove(key)
	f.machines[key] = n
	gk := groupKey(n)
	g, ok := f.groups[gk]
	if !ok {
		g = &groupMembers{byName: map[string]*infrav1.Machine{}}
		f.groups[gk] = g
	}
	g.byName[n.Name] = n
	g.version = f.nextVersion()
	if n.Spec.Online {
		g.on++
	}
	f.mu.Unlock()
	f.visible.advance(kindMachines, n.Namespace, n.ResourceVersion)
}

func (f *fleet) forget(o any) {
	if tomb, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = tomb.Obj
	}
	n, ok := o.(*infrav1.Machine)
	if !ok {
		return
	}
	f.mu.Lock()
	f.remove(types.NamespacedName{Namespace: n.Namespace, Name: n.Name})
	f.mu.Unlock()
	f.visible.advance(kindMachines, n.Namespace, n.ResourceVersion)
}

// remove drops a machine's previous version; f.mu is held.
func (f *fleet) remove(key types.NamespacedName) {
	old, ok := f.machines[key]
	if !ok {
		return
	}
	delete(f.machines, key)
	gk := groupKey(old)
	g := f.groups[gk]
	delete(g.byName, old.Name)
	g.version = f.nextVersion()
	if old.Spec.Online {
		g.on--
	}
	if len(g.byName) == 0 {
		delete(f.groups, gk)
	}
}

// nextVersion returns a new group version; f.mu is held.
func (f *fleet) nextVersion() uint64 {
	f.versions++
	return f.versions
}

func groupKey(n *infrav1.Machine) types.NamespacedName {
	return types.NamespacedName{Namespace: n.Namespace, Name: n.Spec.Group}
}

// count returns a group's member and desired-on counts.
func (f *fleet) count(gk types.NamespacedName) tally {
	f.mu.RLock()
	defer f.mu.RUnlock()
	g, ok := f.groups[gk]
	if !ok {
		return tally{}
	}
	return tally{members: int32(len(g.byName)), on: g.on} //nolint:gosec // a group never has 2^31 members
}

// machine returns one machine (shared with the cache: read only), or nil.
func (f *fleet) machine(key types.NamespacedName) *infrav1.Machine {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.machines[key]
}

// members returns a group's machines, in no particular order. They are shared with the cache:
// read only.
func (f *fleet) members(gk types.NamespacedName) []*infrav1.Machine {
	f.mu.RLock()
	defer f.mu.RUnlock()
	g, ok := f.groups[gk]
	if !ok {
		return nil
	}
	out := make([]*infrav1.Machine, 0, len(g.byName))
	for _, m := range g.byName {
		out = append(out, m)
	}
	return out
}

// derived returns what build derives from the group's members, built once per version of the
// group and kept with it (so it goes when the group does). There is one slot per group:
// NodeGroupNodes' answer, which cluster-autoscaler asks for often and which touches every member.
func (f *fleet) derived(gk types.NamespacedName, build func([]*infrav1.Machine) any) any {
	f.mu.RLock()
	g, ok := f.groups[gk]
	if !ok {
		f.mu.RUnlock()
		return build(nil)
	}
	if d := g.derived; d != nil && d.version == g.version {
		f.mu.RUnlock()
		return d.value
	}
	members := make([]*infrav1.Machine, 0, len(g.byName))
	for _, m := range g.byName {
		members = append(members, m)
	}
	version := g.version
	f.mu.RUnlock()

	value := build(members)
	f.mu.Lock()
	if f.groups[gk] == g && g.version == version {
		g.derived = &derivedValue{version: version, value: value}
	}
	f.mu.Unlock()
	return value
}

// targetWith is a group's member count and its target once the pending changes are applied,
// computed from the counts and the changed machines only, under one lock.
func (f *fleet) targetWith(gk types.NamespacedName, pending map[string]ledgerChange) (members int32, target int64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	g, ok := f.groups[gk]
	if !ok {
		return 0, 0
	}
	target = int64(g.on)
	for name, c := range pending {
		m, ok := g.byName[name]
		if !ok {
			continue
		}
		switch on := m.Spec.Online; {
		case c.On && !on:
			target++
		case !c.On && on:
			target--
		}
	}
	return int32(len(g.byName)), target //nolint:gosec // a group never has 2^31 members
}
