package switchboard

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"golang.org/x/sync/errgroup"
)

// Run fires timers, expires sessions without media and learns peers from
// the kernel's new-flow events until ctx is done. It returns nil on cancel.
func (m *Manager) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return m.runTimers(ctx) })
	g.Go(func() error { return m.runMediaTimeouts(ctx) })
	g.Go(func() error { return m.watch(ctx) })
	return g.Wait()
}

// watch keeps a conntrack event subscription. After (re)subscribing it reads
// the flows that exist, so events missed while not subscribed still teach.
func (m *Manager) watch(ctx context.Context) error {
	for {
		done := make(chan error, 1)
		go func() { done <- m.dp.Watch(ctx, m.Learn) }()
		select {
		case err := <-done:
			if ctx.Err() != nil {
				return nil
			}
			m.log.Warn("conntrack event watch ended; resubscribing", "err", err)
		case <-time.After(200 * time.Millisecond):
			m.watching.Store(m.scanFlows(ctx))
			err := <-done
			m.watching.Store(false)
			if ctx.Err() == nil {
				m.log.Warn("conntrack event watch ended; resubscribing", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// scanFlows learns from the flows that exist and reports whether it could
// read them. It learns as from events, with two differences, because a
// dumped flow may be older than what its leg is now (DESIGN: learning in
// the packet path). A leg that learns in the kernel is taught only the
// source the kernel learned: a flow that predates the leg's learning
// window (an update re-pointed its side and kept the old peer's flow,
// since only its admission changed) is one the kernel never learned from,
// and teaching it would send the other side's media back to the old
// address. And no dumped flow teaches a session changed since the dump
// began.
func (m *Manager) scanFlows(ctx context.Context) bool {
	m.mu.Lock()
	seq := m.changes
	m.mu.Unlock()
	kernel, err := m.dp.Learned(ctx)
	if err != nil {
		m.log.Warn("reading learned sources failed; the flows that exist teach no learning leg", "err", err)
		kernel = map[uint32]netip.AddrPort{}
	}
	flows, err := m.dp.Flows(ctx)
	if err != nil {
		m.log.Warn("reading flows to learn from failed", "err", err)
		return false
	}
	d := &dumped{kernel: kernel, seq: seq}
	for _, f := range flows {
		m.learnFrom(f, d)
	}
	return true
}

// dumped is what a scan (or an event's look-up) knew when it began: the
// kernel's learned sources and the Manager's change count; and the changes
// the scan itself made.
type dumped struct {
	kernel map[uint32]netip.AddrPort
	seq    uint64
	own    map[*entry]uint64
	event  bool // an event's view (Manager.eventView), not a scan's
}

// stale reports whether e changed since d began, other than by d's own
// teaching: what d read of the kernel may predate the change.
func (d *dumped) stale(e *entry) bool {
	return d != nil && e.changed > d.seq && d.own[e] != e.changed
}

// teaches reports whether a dumped flow f of leg may teach e's side.
func (d *dumped) teaches(e *entry, leg relay.Leg, f relay.Flow) bool {
	if d == nil {
		return true
	}
	return !d.stale(e) && (!leg.Learn || d.kernel[f.Mark] == f.Src)
}

// taught records that the scan itself made e's last change, if it did
// (teaches let it, so any later change of e is the scan's own).
func (d *dumped) taught(e *entry) {
	if d != nil && e.changed > d.seq {
		if d.own == nil {
			d.own = map[*entry]uint64{}
		}
		d.own[e] = e.changed
	}
}

// Learn takes the source of a new flow into a gate as that side's real
// address, if the gate is learning: the first source within the learning
// window wins and locks the gate; an always-learn gate follows every new
// source. The opposite leg is re-pointed and its stale flows deleted. A flow
// that no longer matches its leg (it raced a change) is deleted; any other
// is remembered for the leg's next change (flows.go). An ended flow's
// counters are kept in its session (Session.Ended).
//
// A leg that learns in the kernel is taught only the source the kernel
// learned, looked up (outside the lock) for the event: an event handled
// after an update re-pointed its side may be of a flow from before it,
// which the kernel, whose learned source the update cleared, did not learn
// from (DESIGN: learning in the packet path). Should the session change
// while the look-up runs, it is done again.
func (m *Manager) Learn(f relay.Flow) {
	for range learnAttempts {
		d := m.eventView(f)
		if d == nil {
			m.learnFrom(f, nil)
			return
		}
		kernel, err := m.dp.Learned(context.Background(), f.Mark)
		if err != nil {
			m.log.Warn("looking up what the kernel learned failed; learning from the event", "mark", f.Mark, "err", err)
			m.learnFrom(f, nil)
			return
		}
		d.kernel = kernel
		if m.learnFrom(f, d) {
			return
		}
	}
	m.log.Warn("a new flow's session kept changing while its learned source was looked up; not learned from it",
		"mark", f.Mark, "source", f.Src)
}

// learnAttempts bounds how often Learn looks the kernel up for one event.
const learnAttempts = 3

// eventView returns, for an event whose flow may teach a leg that learns
// in the kernel, a view to fill with the kernel's learned source: the
// Manager's change count now. It is nil for any other event.
func (m *Manager) eventView(f relay.Flow) *dumped {
	m.lockSettled()
	defer m.mu.Unlock()
	idx, _, _ := legSide(f.Mark)
	e := m.byIndex[idx]
	if f.Ended || !f.Src.IsValid() || e == nil {
		return nil
	}
	if leg, ok := m.installedLeg(e, legOf(f.Mark)); !ok || !leg.Learn || f.Dst != leg.Gate {
		return nil
	}
	return &dumped{seq: m.changes, event: true}
}

// learnFrom is Learn for a flow that an event reported (d nil, or the
// view of eventView) or a scan dumped. It reports false when d is an
// event's view and the session changed since it began: the event is to be
// looked at again.
func (m *Manager) learnFrom(f relay.Flow, d *dumped) bool {
	m.lockSettled()
	defer m.mu.Unlock()
	idx, sideA, rtcp := legSide(f.Mark)
	e := m.byIndex[idx]
	if !f.Src.IsValid() {
		return true
	}
	if f.Ended {
		m.ended(e, f)
		return true
	}
	leg, ok := m.installedLeg(e, legOf(f.Mark))
	if !ok || f.Dst != leg.Gate {
		m.deleteStale([]relay.Flow{f}) // a flow of a previous owner of this mark
		return true
	}
	if lock := leg.Lock; (lock.IsValid() && lock != f.Src) || (leg.Guard && !slices.Contains(leg.Allowed[:], f.Src.Addr().Unmap())) {
		m.dropStranger(e, f)
		return true
	}
	if d != nil && d.event && d.stale(e) {
		return false // what the look-up read may predate the change
	}
	if d.teaches(e, leg, f) {
		m.learn(e, f, sideA, rtcp)
		d.taught(e)
	}
	if m.observe(f) {
		m.deleteStale([]relay.Flow{f})
	}
	return true
}

// learn takes f's source as its side's address if that side is learning.
func (m *Manager) learn(e *entry, f relay.Flow, sideA, rtcp bool) {
	s := e.s
	t := m.boards[s.Switchboard].sb.Timeouts
	p, always := s.peer(sideA), t.AlwaysLearnA
	if !sideA {
		always = t.AlwaysLearnB
	}
	learned := p.learnedFor(rtcp)
	now := m.now()
	if learned == f.Src || (!always && (learned.IsValid() || !now.Before(p.LearnUntil))) {
		return
	}
	next := s.clone()
	next.peer(sideA).learn(rtcp, f.Src)
	if err := m.commit(context.Background(), e, next, false); err != nil {
		m.log.Error("learning a peer failed", "session", s.ID, "source", f.Src, "err", err)
		return
	}
	m.obs.Learned(s.Switchboard)
	m.log.Info("peer learned", "session", s.ID, "side", sideName(sideA), "rtcp", rtcp, "source", f.Src)
}

// ended adds the final counters of a flow the kernel destroyed to its
// session, so that a session's counters do not drop when a leg is
// re-pointed or a flow times out on hold. Flows of sessions that are gone
// (their marks are never reused soon: indexes count up) and flows into
// another gate are not the session's.
func (m *Manager) ended(e *entry, f relay.Flow) {
	k := legOf(f.Mark)
	leg, ok := m.installedLeg(e, k)
	if !ok || f.Dst != leg.Gate {
		return
	}
	e.forget(f)
	if f.Packets == 0 && f.Bytes == 0 {
		return
	}
	next := e.s.clone()
	if next.Ended == nil {
		next.Ended = &[legsPerSession]Counters{}
	}
	next.Ended[k].Packets += f.Packets
	next.Ended[k].Bytes += f.Bytes
	if err := m.commit(context.Background(), e, next, false); err != nil {
		m.log.Error("keeping an ended flow's counters failed", "session", e.s.ID, "source", f.Src, "err", err)
	}
}

// dropStranger deletes the flow of a source other than the one a leg is
// locked to: the kernel drops such flows once the lock is installed, so it
// raced the lock (RTP Bleed) and must not keep reaching the peer.
func (m *Manager) dropStranger(e *entry, f relay.Flow) {
	if err := m.apply(context.Background(), relay.Batch{Delete: []relay.Flow{f}}); err != nil {
		m.log.Error("deleting a stranger's flow failed", "session", e.s.ID, "source", f.Src, "err", err)
		return
	}
	m.obs.Refused(e.s.Switchboard)
	m.log.Warn("stranger's flow to a locked gate deleted", "session", e.s.ID, "source", f.Src, "gate", f.Dst)
}

func sideName(a bool) string {
	if a {
		return "a"
	}
	return "b"
}
