package switchboard

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

// applyChunk bounds the legs per transaction while repairing, so that a
// restart with 100k sessions does not build one enormous netlink batch.
const applyChunk = 2048

// Start loads the journal, installs the table for the configured gates, and
// repairs the difference between the journal and the kernel: missing or
// changed legs are (re)installed, orphaned legs and their conntrack entries
// removed. Established calls keep flowing throughout. Call it once, before
// serving requests.
//
// What the kernel holds is listed from the table, unless the journal's last
// record carries the ruleset generation the kernel is still at: then
// nothing was committed in the namespace since that record (by the daemon
// or anyone else), and the kernel holds exactly the journaled legs. Listing
// 100k sessions takes the kernel seconds (it re-walks a set for every dump
// message); reading the generation takes microseconds.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, journaled, err := openJournal(m.cfg.StateDir)
	if err != nil {
		return err
	}
	m.j = j
	dp, ok := m.dp.(*counted)
	if !ok {
		dp = &counted{Dataplane: m.dp}
		m.dp = dp
	}
	j.gen = dp
	// Read before Setup, which commits too.
	before, err := dp.Generation(ctx)
	if err != nil {
		m.log.Warn("reading the ruleset generation failed; listing the table", "err", err)
	}
	trusted := err == nil && j.holds(before)
	m.adopt(journaled)
	if err := m.dp.Setup(ctx, m.gates()); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	var have []relay.Leg
	if trusted {
		have, trusted = journaledLegs(journaled, j.locks)
	}
	if !trusted {
		if have, err = m.dp.Legs(ctx); err != nil {
			return fmt.Errorf("start: %w", err)
		}
	}
	if err := m.repair(ctx, have); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	// Every commit since before was ours: the table holds the sessions'
	// legs, and the count of our commits from here stamps the journal.
	if _, err := dp.Generation(ctx); err != nil {
		m.log.Warn("reading the ruleset generation failed; the next start lists the table", "err", err)
	}
	for id, e := range m.sessions {
		m.schedule(e.s)
		j.locks[id] = lockBits(e.installed)
	}
	if err := m.compact(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	m.log.Info("sessions restored", "sessions", len(m.sessions), "listed", !trusted)
	return nil
}

// adopt takes the journal's sessions whose switchboard and ports still exist
// in the configuration; the others are dropped (and their legs repaired away).
func (m *Manager) adopt(journaled map[string]*Session) {
	ordered := make([]*Session, 0, len(journaled))
	for _, s := range journaled {
		ordered = append(ordered, s)
	}
	sort.Slice(ordered, func(i, j int) bool { return ordered[i].Index < ordered[j].Index })
	for _, s := range ordered {
		if err := m.claim(s); err != nil {
			m.log.Warn("dropping journaled session", "session", s.ID, "switchboard", s.Switchboard, "err", err)
			continue
		}
		e := &entry{s: s}
		m.sessions[s.ID], m.byIndex[s.Index] = e, e
		if s.Index >= m.nextIndex {
			m.nextIndex = s.Index + 1
		}
	}
}

func (m *Manager) claim(s *Session) error {
	bd := m.boards[s.Switchboard]
	switch {
	case bd == nil:
		return fmt.Errorf("switchboard %q is no longer configured", s.Switchboard)
	case s.Index == 0 || s.Index > maxIndex || m.byIndex[s.Index] != nil:
		return fmt.Errorf("invalid or duplicate index %d", s.Index)
	case s.GateA.Addr() != bd.sb.A.Addr || s.GateB.Addr() != bd.sb.B.Addr:
		return fmt.Errorf("gate addresses %s, %s are no longer the switchboard's", s.GateA.Addr(), s.GateB.Addr())
	}
	if err := bd.a.claim(s.GateA.Port()); err != nil {
		return fmt.Errorf("gate-a: %w", err)
	}
	if err := bd.b.claim(s.GateB.Port()); err != nil {
		bd.a.release(s.GateA.Port())
		return fmt.Errorf("gate-b: %w", err)
	}
	return nil
}

func (m *Manager) gates() []relay.Gate {
	var g []relay.Gate
	for _, sb := range m.cfg.Switchboards {
		g = append(g,
			relay.Gate{Addr: sb.A.Addr, First: sb.A.Ports.First, Last: sb.A.Ports.Last, Zone: relay.ZoneA},
			relay.Gate{Addr: sb.B.Addr, First: sb.B.Ports.First, Last: sb.B.Ports.Last, Zone: relay.ZoneB})
	}
	return g
}

// repair makes the kernel, which holds have, hold exactly the legs of the
// sessions.
func (m *Manager) repair(ctx context.Context, have []relay.Leg) error {
	now := m.now()
	var want []relay.Leg
	wanted := map[uint32]bool{}
	for _, e := range m.sessions {
		l := e.s.legs(m.boards[e.s.Switchboard].sb.Timeouts, now)
		e.installed = l[:]
		want = append(want, e.installed...)
		for _, x := range l {
			wanted[x.Mark] = true
		}
	}
	b := diffLegs(have, want)
	for len(b.Remove) > 0 {
		n := min(len(b.Remove), applyChunk)
		if err := m.dp.Apply(ctx, relay.Batch{Remove: b.Remove[:n]}); err != nil {
			return err
		}
		b.Remove = b.Remove[n:]
	}
	for len(b.Add) > 0 {
		n := min(len(b.Add), applyChunk)
		if err := m.dp.Apply(ctx, relay.Batch{Add: b.Add[:n]}); err != nil {
			return err
		}
		b.Add = b.Add[n:]
	}
	return m.flushOrphans(ctx, wanted)
}

// flushOrphans deletes conntrack entries carrying a relay mark of no session.
func (m *Manager) flushOrphans(ctx context.Context, wanted map[uint32]bool) error {
	flows, err := m.dp.Flows(ctx)
	if err != nil {
		return err
	}
	var orphans []uint32
	for _, f := range flows {
		if !wanted[f.Mark] {
			orphans = append(orphans, f.Mark)
		}
	}
	if len(orphans) > 0 {
		m.log.Info("flushing orphaned flows", "flows", len(orphans))
	}
	return m.dp.Apply(ctx, relay.Batch{Flush: orphans})
}

// journaledLegs returns the legs the kernel holds for every journaled
// session (including those the configuration no longer holds), as their
// last records installed them. It reports false when two sessions claim
// the same mark or gate, which the kernel cannot hold: then the table must
// be listed.
func journaledLegs(journaled map[string]*Session, locks map[string]uint8) ([]relay.Leg, bool) {
	legs := make([]relay.Leg, 0, legsPerSession*len(journaled))
	marks := make(map[uint32]bool, cap(legs))
	gates := make(map[netip.AddrPort]bool, cap(legs))
	for id, s := range journaled {
		for _, l := range installedLegs(s, locks[id]) {
			if marks[l.Mark] || gates[l.Gate] {
				return nil, false
			}
			marks[l.Mark], gates[l.Gate] = true, true
			legs = append(legs, l)
		}
	}
	return legs, true
}

// endOfTime is after every learning window.
var endOfTime = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// installedLegs are the legs of s with the locks of bits: a lock, once
// installed, is the learned source or (answered, window closed) the
// signalled address, which legs computes at any time after the window.
func installedLegs(s *Session, bits uint8) [legsPerSession]relay.Leg {
	l := s.legs(Timeouts{}, endOfTime)
	for k := range l {
		if bits&(1<<k) == 0 {
			l[k].Lock = netip.AddrPort{}
		}
	}
	return l
}
