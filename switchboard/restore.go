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
	m.reportSkips(journaled)
	j.gen = &m.gen
	// Read before Setup, which may commit too.
	before, err := m.readGeneration(ctx)
	if err != nil {
		m.log.Warn("reading the ruleset generation failed; listing the table", "err", err)
	}
	trusted := err == nil && j.holds(before)
	m.adopt(journaled)
	if err := m.dp.Setup(ctx, m.gates()); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	m.installAll()
	var repair relay.Batch
	if trusted {
		repair, trusted = m.journaledRepair(journaled, j.locks)
	}
	if trusted {
		if err := m.applyChunked(ctx, repair); err != nil {
			// The kernel disagrees with the journal after all.
			m.log.Warn("repairing from the journal failed; listing the table", "err", err)
			trusted = false
		}
	}
	if !trusted {
		m.log.Info("restoring: listing the kernel table", "sessions", len(m.sessions))
		have, err := m.dp.Legs(ctx)
		if err != nil {
			return fmt.Errorf("start: %w", err)
		}
		m.adoptLearned(have)
		repair = diffLegs(have, m.allLegs())
		if err := m.applyChunked(ctx, repair); err != nil {
			return fmt.Errorf("start: %w", err)
		}
	}
	if err := m.flushOrphans(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	// Every commit since before was ours: the table holds the sessions'
	// legs, and the count of our commits from here stamps the journal.
	if _, err := m.readGeneration(ctx); err != nil {
		m.log.Warn("reading the ruleset generation failed; the next start lists the table", "err", err)
	}
	for _, e := range m.sessions {
		m.schedule(e.s)
	}
	if err := m.recordStart(journaled); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	m.log.Info("sessions restored", "sessions", len(m.sessions), "listed", !trusted, "repaired", len(repair.Remove)+len(repair.Add))
	return nil
}

// reportSkips logs what the journal could not read and rewrites it
// without. A start that skipped records lists the kernel table (see
// journal.holds), which tells what the kernel holds; sessions the journal
// lost cannot be rebuilt from it (the kernel has no call-ids or tags), so
// their legs are removed as orphans.
func (m *Manager) reportSkips(journaled map[string]*Session) {
	j := m.j
	for _, s := range j.skips {
		m.log.Warn("journal: skipped what could not be read; the kernel table is listed instead",
			"journal", j.path, "offset", s.Offset, "line", s.Line, "reason", s.Reason)
	}
	if !j.damaged() {
		return
	}
	if err := j.rewrite(journaled); err != nil {
		m.log.Warn("journal: rewriting without the unreadable records failed; appending to it", "journal", j.path, "err", err)
		return
	}
	m.log.Warn("journal: rewritten without the unreadable records; the damaged one is kept", "journal", j.path, "kept", j.path+".unreadable")
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
			m.publishEnd(s, EndGone)
			continue
		}
		e := &entry{s: s}
		e.forgetFlows() // flows of a previous run were never seen
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

// installAll makes every session's legs at now the ones to install.
func (m *Manager) installAll() {
	now := m.now()
	for _, e := range m.sessions {
		e.legsAt, e.hasLegs = now, true
	}
}

// allLegs returns the legs of every session, as the kernel is to hold them.
func (m *Manager) allLegs() []relay.Leg {
	legs := make([]relay.Leg, 0, legsPerSession*len(m.sessions))
	for _, e := range m.sessions {
		l := m.installed(e)
		legs = append(legs, l...)
	}
	return legs
}

// journaledRepair returns the batch that turns the legs the journal says
// the kernel holds into the sessions' legs: the journaled legs of sessions
// the configuration no longer holds are removed, changed legs (a learning
// window closed while the daemon was down) replaced. It reports false when
// the journal names a leg the kernel cannot hold (a mark or gate twice, an
// index out of range): then the table must be listed.
func (m *Manager) journaledRepair(journaled map[string]*Session, locks map[string]uint8) (relay.Batch, bool) {
	var b relay.Batch
	indexes := make(map[uint32]bool, len(journaled))
	gates := make(map[netip.AddrPort]bool, legsPerSession*len(journaled))
	for id, s := range journaled {
		if s.Index == 0 || s.Index > maxIndex || indexes[s.Index] {
			return relay.Batch{}, false
		}
		indexes[s.Index] = true
		bd := m.boards[s.Switchboard]
		if bd == nil {
			return relay.Batch{}, false
		}
		old := journaledLegs(s, bd.sb, locks[id])
		for _, l := range old {
			if gates[l.Gate] {
				return relay.Batch{}, false
			}
			gates[l.Gate] = true
		}
		e := m.sessions[id]
		if e == nil || e.s != s {
			b.Remove = append(b.Remove, old[:]...)
			continue
		}
		cur := m.installed(e)
		for k, l := range old {
			if l != cur[k] {
				b.Remove = append(b.Remove, l)
				b.Add = append(b.Add, cur[k])
			}
		}
	}
	return b, true
}

// applyChunked commits b in chunks, removals first, so that a restart with 100k
// sessions does not build one enormous netlink batch.
func (m *Manager) applyChunked(ctx context.Context, b relay.Batch) error {
	defer m.restoreProgress(len(b.Remove) + len(b.Add))(&b)
	for len(b.Remove) > 0 {
		n := min(len(b.Remove), applyChunk)
		if err := m.apply(ctx, relay.Batch{Remove: b.Remove[:n]}.FlushStale()); err != nil {
			return err
		}
		b.Remove = b.Remove[n:]
	}
	for len(b.Add) > 0 {
		n := min(len(b.Add), applyChunk)
		if err := m.apply(ctx, relay.Batch{Add: b.Add[:n]}); err != nil {
			return err
		}
		b.Add = b.Add[n:]
	}
	return nil
}

// recordStart brings the journal up to what start made of it: sessions the
// configuration dropped are deleted, sessions whose locks changed put
// again, and a gen record stamps the generation the kernel is at now. The
// journal is rewritten instead when that would make most of it history
// (many windows closed while the daemon was down, or a journal written
// before records carried locks).
func (m *Manager) recordStart(journaled map[string]*Session) error {
	j := m.j
	for _, e := range m.sessions { // as the start left them (adoptLearned)
		e.locks = lockBits(m.installed(e))
	}
	var dropped []string
	var changed []*entry
	for id, s := range journaled {
		switch e := m.sessions[id]; {
		case e == nil || e.s != s:
			dropped = append(dropped, id)
		case e.locks != j.locks[id]:
			changed = append(changed, e)
		}
	}
	j.locks = nil // from here the Manager's entries tell the locks
	if 2*(len(dropped)+len(changed)) > len(m.sessions) || j.needsCompaction() {
		err := m.compact()
		if err == nil {
			return nil
		}
		// The records below say the same at greater length: a journal
		// that cannot be rewritten (no room for the copy) stops no start.
		m.log.Warn("compacting the journal failed; appending to it instead", "err", err)
	}
	for _, id := range dropped {
		if err := j.del(id); err != nil {
			return err
		}
	}
	for _, e := range changed {
		if err := j.put(e.s, m.installed(e), false); err != nil {
			return err
		}
	}
	return j.mark()
}

// flushOrphans deletes conntrack entries carrying a relay mark of no session.
func (m *Manager) flushOrphans(ctx context.Context) error {
	flows, err := m.dp.Flows(ctx)
	if err != nil {
		return err
	}
	var orphans []uint32
	for _, f := range flows {
		if idx, _, _ := legSide(f.Mark); m.byIndex[idx] == nil {
			orphans = append(orphans, f.Mark)
		}
	}
	if len(orphans) > 0 {
		m.log.Info("flushing orphaned flows", "flows", len(orphans))
	}
	return m.apply(ctx, relay.Batch{Flush: orphans})
}

// adoptLearned records in their sessions the sources the kernel learned
// while the daemon was not there to hear of them (learning needs no
// daemon), so that the repair keeps them.
// restoreProgress logs, for a restart's repair of total legs, a line when
// it starts and when it ends if it takes more than one transaction: the
// returned func, deferred with the batch being applied, writes the last.
func (m *Manager) restoreProgress(total int) func(*relay.Batch) {
	if total <= applyChunk {
		return func(*relay.Batch) {}
	}
	start := m.now()
	m.log.Info("restoring: repairing the kernel table", "legs", total)
	return func(b *relay.Batch) {
		m.log.Info("restoring: kernel table repaired", "legs", total-len(b.Remove)-len(b.Add), "of", total,
			"took", m.now().Sub(start).Round(time.Millisecond))
	}
}

func (m *Manager) adoptLearned(have []relay.Leg) {
	for _, l := range have {
		if !l.Learned.IsValid() {
			continue
		}
		idx, sideA, rtcp := legSide(l.Mark)
		e := m.byIndex[idx]
		if e == nil || !relay.IsMark(l.Mark) {
			continue
		}
		if want, ok := m.installedLeg(e, legOf(l.Mark)); !ok || want.Gate != l.Gate || !want.Learn {
			continue
		}
		next := e.s // changed in place: recordStart tells dropped sessions by pointer
		next.peer(sideA).learn(rtcp, l.Learned)
		m.log.Info("peer learned while the daemon was down", "session", next.ID, "side", sideName(sideA), "rtcp", rtcp, "source", l.Learned)
	}
}

// endOfTime is after every learning window.
var endOfTime = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// journaledLegs are the legs of s on sb with the locks of bits: a lock,
// once installed, is the learned source or (answered, window closed) the
// signalled address, which legs computes at any time after the window; a
// leg without one was installed while its window was open. (A leg whose
// window closed unlearned with no address to lock to differs: the repair
// then fails and the table is listed.)
func journaledLegs(s *Session, sb *Switchboard, bits uint8) [legsPerSession]relay.Leg {
	locked := s.legs(sb, endOfTime)
	open := s.legs(sb, time.Time{})
	for k := range locked {
		if bits&(1<<k) == 0 {
			locked[k] = open[k]
			locked[k].Lock = netip.AddrPort{}
		}
	}
	return locked
}
