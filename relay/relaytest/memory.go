// Package relaytest provides an in-memory relay.Dataplane for tests that
// exercise sessions, timers and front ends without a kernel. It models the
// kernel's transaction rules (a batch applies whole or not at all; removing
// a missing leg or adding a duplicate fails) but forwards no packet: tests
// that claim kernel behaviour belong in the integration package.
package relaytest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"sync"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

// Memory is an in-memory relay.Dataplane. The zero value is not usable; call
// NewMemory. It is safe for concurrent use.
type Memory struct {
	mu        sync.Mutex
	legs      map[uint32]relay.Leg
	gates     []relay.Gate
	flows     []relay.Flow
	fail      error
	applied   int
	failFlows bool
	flushed   []uint32
	deleted   []relay.Flow
	events    chan relay.Flow
	genID     uint32 // the modelled kernel's generation: one step per commit, by anyone
	gen       relay.GenerationCounter
	legsRead  int
	dumps     int
	// learned models the kernel's learned maps: what Apply put there and
	// what KernelLearns took.
	learned map[uint32]netip.AddrPort
}

var _ relay.Dataplane = (*Memory)(nil)

// NewMemory returns an empty dataplane.
func NewMemory() *Memory {
	return &Memory{legs: map[uint32]relay.Leg{}, events: make(chan relay.Flow, 64), learned: map[uint32]netip.AddrPort{}}
}

// FailFlowsNext makes the next Apply commit its legs but report that its
// stale flows could not be deleted (relay.ErrFlowsRemain).
func (m *Memory) FailFlowsNext() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failFlows = true
}

// FailNext makes the next Apply or Setup fail with err and change nothing.
func (m *Memory) FailNext(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

// Setup records gates.
func (m *Memory) Setup(ctx context.Context, gates []relay.Gate) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.takeFailure(); err != nil {
		m.gen.Committed(err)
		return err
	}
	m.gates = append([]relay.Gate(nil), gates...)
	m.genID++
	m.gen.Committed(nil)
	return nil
}

func (m *Memory) takeFailure() error {
	err := m.fail
	m.fail = nil
	return err
}

// Apply applies b whole or not at all, as the kernel's transaction does.
func (m *Memory) Apply(ctx context.Context, b relay.Batch) (relay.Generation, error) {
	err := m.apply(b)
	if err != nil && !errors.Is(err, relay.ErrFlowsRemain) {
		return relay.Generation{}, err
	}
	g, _ := m.Expected()
	return g, err
}

// apply is Apply but for the generation it returns.
func (m *Memory) apply(b relay.Batch) error {
	if err := b.Validate(); err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.takeFailure(); err != nil {
		m.gen.Committed(err)
		return err
	}
	next := make(map[uint32]relay.Leg, len(m.legs))
	for k, v := range m.legs {
		next[k] = v
	}
	for _, l := range b.Remove {
		if next[l.Mark] != l {
			return &relay.OpError{Op: "apply", Err: fmt.Errorf("remove leg %#x: %w", l.Mark, errNotInstalled)}
		}
		delete(next, l.Mark)
	}
	gates := make(map[netip.AddrPort]bool, len(next))
	for _, l := range next {
		gates[l.Gate] = true
	}
	for _, l := range b.Add {
		if _, ok := next[l.Mark]; ok || gates[l.Gate] {
			return &relay.OpError{Op: "apply", Err: fmt.Errorf("add leg %#x: %w", l.Mark, errInstalled)}
		}
		next[l.Mark], gates[l.Gate] = l, true
	}
	m.legs = next
	m.applyLearned(b)
	m.applied++
	if len(b.Remove)+len(b.Add) > 0 {
		m.genID++
		m.gen.Committed(nil)
	}
	m.flushed = append(m.flushed, b.Flush...)
	m.deleted = append(m.deleted, b.Delete...)
	if m.failFlows {
		m.failFlows = false
		return &relay.OpError{Op: "delete flows", Err: fmt.Errorf("%w: injected", relay.ErrFlowsRemain)}
	}
	return nil
}

// applyLearned does to the modelled learned maps what b does to the
// kernel's: a removed leg's learned source goes, an added leg's is put.
func (m *Memory) applyLearned(b relay.Batch) {
	for _, l := range b.Remove {
		delete(m.learned, l.Mark)
	}
	for _, l := range b.Add {
		if l.Learned.IsValid() {
			m.learned[l.Mark] = l.Learned
		}
	}
}

// KernelLearns models the kernel's learning rule: a new flow from src
// accepted by the learning leg mark (a guarded leg accepts only its
// learning sources). The first writer stays.
func (m *Memory) KernelLearns(mark uint32, src netip.AddrPort) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.legs[mark]
	if !ok || !l.Learn || l.Guard && !slices.Contains(l.Allowed[:], src.Addr().Unmap()) {
		return
	}
	if _, taken := m.learned[mark]; !taken {
		m.learned[mark] = src
	}
}

// NewFlow models a new flow's first packet going through the kernel's
// rules (KernelLearns) and returns f, the flow its conntrack event
// reports: a test hands it to the Manager as that event.
func (m *Memory) NewFlow(f relay.Flow) relay.Flow {
	m.KernelLearns(f.Mark, f.Src)
	return f
}

// Learned returns the modelled learned sources, of marks if any given.
func (m *Memory) Learned(ctx context.Context, marks ...uint32) (map[uint32]netip.AddrPort, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(marks) == 0 {
		return maps.Clone(m.learned), nil
	}
	out := map[uint32]netip.AddrPort{}
	for _, mk := range marks {
		if src, ok := m.learned[mk]; ok {
			out[mk] = src
		}
	}
	return out, nil
}

var (
	errNotInstalled = errors.New("not installed")
	errInstalled    = errors.New("already installed")
)

// Legs returns the installed legs sorted by mark.
func (m *Memory) Legs(ctx context.Context) ([]relay.Leg, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.legsRead++
	out := make([]relay.Leg, 0, len(m.legs))
	for _, l := range m.legs {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Mark < out[j].Mark })
	return out, nil
}

// Gates returns the gates of the last Setup.
func (m *Memory) Gates() []relay.Gate {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]relay.Gate(nil), m.gates...)
}

// Applied counts successful batches.
func (m *Memory) Applied() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applied
}

// Flushed returns the marks whose flows removals would have flushed, in order.
func (m *Memory) Flushed() []uint32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]uint32(nil), m.flushed...)
}

// Deleted returns the single flows batches asked to delete, in order.
func (m *Memory) Deleted() []relay.Flow {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]relay.Flow(nil), m.deleted...)
}

// SetFlows replaces what Flows reports.
func (m *Memory) SetFlows(flows ...relay.Flow) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.flows = append([]relay.Flow(nil), flows...)
}

// Flows returns the flows set by SetFlows that carry one of marks (or all).
func (m *Memory) Flows(ctx context.Context, marks ...uint32) ([]relay.Flow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dumps++
	want := map[uint32]bool{}
	for _, mk := range marks {
		want[mk] = true
	}
	var out []relay.Flow
	for _, f := range m.flows {
		if len(marks) == 0 || want[f.Mark] {
			out = append(out, f)
		}
	}
	return out, nil
}

// Dumps counts the calls of Flows: each a walk of the kernel's whole
// conntrack table.
func (m *Memory) Dumps() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dumps
}

// Lookup returns the flows set by SetFlows with the tuples of flows.
func (m *Memory) Lookup(ctx context.Context, flows ...relay.Flow) ([]relay.Flow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []relay.Flow
	for _, want := range flows {
		for _, f := range m.flows {
			if f.Src == want.Src && f.Dst == want.Dst && f.Zone == want.Zone {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// Inject delivers f to the running Watch as its conntrack event: a new
// flow's first packet went through the kernel's rules first (NewFlow).
func (m *Memory) Inject(f relay.Flow) {
	if !f.Ended {
		m.NewFlow(f)
	}
	m.events <- f
}

// Watch delivers injected flows to fn until ctx is done.
func (m *Memory) Watch(ctx context.Context, fn func(relay.Flow)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-m.events:
			fn(f)
		}
	}
}

// Close does nothing.
func (m *Memory) Close() error { return nil }

// Generation reports the number of committed batches as the generation id,
// for boot "memory" and namespace 1. Own is as the kernel dataplane's.
func (m *Memory) Generation(ctx context.Context) (relay.Generation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen.Read(relay.Generation{Boot: "memory", NetNS: 1, ID: m.genID}), nil
}

// Expected is what Apply returns: the generation predicted from the
// batches since the last reading, when it can be.
func (m *Memory) Expected() (relay.Generation, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.gen.Expected()
	if !ok {
		return relay.Generation{}, false
	}
	return g, true
}

// Foreign records a transaction committed by someone else (as `nft add
// element` would): the generation moves on without this dataplane.
func (m *Memory) Foreign() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.genID++
}

// LegsRead counts the calls to Legs: how often the table was listed.
func (m *Memory) LegsRead() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.legsRead
}
