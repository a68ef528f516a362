package switchboard

import (
	"context"
	"slices"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

// Stale conntrack entries (DESIGN: "conntrack is half of the design") are
// deleted by their tuples, not by mark: deleting by mark walks the whole
// conntrack table (~60 µs empty, growing with every flow the router
// carries), once per changed leg. So the Manager keeps, per leg, the flows
// the kernel reported for it (new-flow events, and the dumps of the media
// timeout and of a resubscribed watch). When a leg changes or goes, its
// known flows are deleted by tuple; a leg that never carried media costs
// nothing.
//
// A flow created just before a change may be reported just after it. Such a
// late flow no longer matches its leg (another gate, another peer, or no
// session at all) and is deleted as soon as it is seen (observe). Legs whose
// flows are not known, after a restart or when more than maxLegFlows were
// seen, are flushed by mark as before.

// maxLegFlows bounds the flows remembered per leg; past it the leg's flows
// count as unknown until its next change flushes them by mark.
const maxLegFlows = 8

// legFlows are the flows seen per leg of one session since each leg last
// changed.
type legFlows [legsPerSession][]relay.Flow

// legOf returns the position of mark among a session's legs.
func legOf(mark uint32) int { return int(mark & relay.MaxMarkIndex % legsPerSession) }

// remember records f as a flow of its leg in e, unless it is known already.
func (e *entry) remember(f relay.Flow) {
	k := legOf(f.Mark)
	if e.unknownFlows&(1<<k) != 0 {
		return
	}
	if e.flows == nil {
		e.flows = &legFlows{}
	}
	for _, g := range e.flows[k] {
		if g.Src == f.Src && g.Dst == f.Dst && g.Zone == f.Zone {
			return
		}
	}
	if len(e.flows[k]) == maxLegFlows {
		e.flows[k] = nil
		e.unknownFlows |= 1 << k
		return
	}
	e.flows[k] = append(e.flows[k], f)
}

// forget drops f from the flows remembered for its leg: the kernel ended it.
func (e *entry) forget(f relay.Flow) {
	if e.flows == nil {
		return
	}
	k := legOf(f.Mark)
	e.flows[k] = slices.DeleteFunc(e.flows[k], func(g relay.Flow) bool {
		return g.Src == f.Src && g.Dst == f.Dst && g.Zone == f.Zone
	})
}

// forgetFlows marks every leg's flows as unknown: they will be flushed by
// mark when the leg changes.
func (e *entry) forgetFlows() {
	e.flows, e.unknownFlows = nil, 1<<legsPerSession-1
}

// withFlows adds to b what deletes the flows of the stale legs (b.Stale):
// the known flows of a leg, by tuple, or, when the leg may hold flows
// never seen, all of them by mark. This is the one place that decides how
// a change's stale flows go.
func (e *entry) withFlows(b *relay.Batch, stale []uint32) {
	for _, mark := range stale {
		k := legOf(mark)
		if e.unknownFlows&(1<<k) != 0 {
			b.Flush = append(b.Flush, mark)
			continue
		}
		if e.flows != nil {
			b.Delete = append(b.Delete, e.flows[k]...)
		}
	}
}

// setFlows records what applying a batch did to the flows of its stale
// legs: deleted (none left), or, when deleting failed, unknown.
func (e *entry) setFlows(stale []uint32, unknown bool) {
	for _, mark := range stale {
		k := legOf(mark)
		if e.flows != nil {
			e.flows[k] = nil
		}
		if unknown {
			e.unknownFlows |= 1 << k
		} else {
			e.unknownFlows &^= 1 << k
		}
	}
}

// stale reports whether f no longer matches what e's leg holds: it entered
// another gate or goes to another peer. A nil e (no session) makes every
// flow stale.
func (m *Manager) stale(e *entry, f relay.Flow) bool {
	l, ok := m.installedLeg(e, legOf(f.Mark))
	if !ok {
		return true
	}
	return f.Dst != l.Gate || (f.Peer.IsValid() && f.Peer != l.Peer)
}

// observe sorts a flow the kernel reported: a current one is remembered
// for its leg's next change; a stale one is reported, for the caller to
// delete (with the others of its dump, if it has one).
func (m *Manager) observe(f relay.Flow) (stale bool) {
	idx, _, _ := legSide(f.Mark)
	e := m.byIndex[idx]
	if m.stale(e, f) {
		return true
	}
	e.remember(f)
	return false
}

// deleteStale deletes flows that no longer match their legs.
func (m *Manager) deleteStale(flows []relay.Flow) {
	if len(flows) == 0 {
		return
	}
	if err := m.apply(context.Background(), relay.Batch{Delete: flows}); err != nil {
		m.log.Error("deleting stale flows failed", "flows", len(flows), "err", err)
		return
	}
	for _, f := range flows {
		m.log.Debug("stale flow deleted", "mark", f.Mark, "source", f.Src, "gate", f.Dst, "peer", f.Peer)
	}
}
