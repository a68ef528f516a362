package lrkproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Sessions is what the front end needs from the session manager;
// *switchboard.Manager satisfies it.
type Sessions interface {
	AllocPorts(ctx context.Context, r switchboard.AllocRequest, portA, portB uint16) (*switchboard.Session, error)
	Update(ctx context.Context, id string, r switchboard.UpdateRequest) (*switchboard.Session, error)
	Delete(ctx context.Context, id string) error
	Show(ctx context.Context, id string) (*switchboard.Details, error)
	List() []*switchboard.Session
}

var _ Sessions = (*switchboard.Manager)(nil)

// LabelCallID is the session label holding the Call-ID an S installed; the
// table is rebuilt from it after a restart.
const LabelCallID = "lrkproxy-call-id"

// step is how far the module's port counter moves per call (gt=0: the
// callee-facing port P and the caller-facing P+2, each with RTCP on the
// next port). With gt=1 it moves by 2 and uses P on both gates; a range
// laid out for 4 suits both.
const step = 4

// mappings is the table of calls the module installed: one session per
// Call-ID (the module relays the first audio stream only). Safe for
// concurrent use; requests are serialised.
type mappings struct {
	sessions Sessions
	sb       *switchboard.Switchboard
	base     NodeConfig // without CurrentPort
	log      *slog.Logger
	now      func() time.Time

	mu     sync.Mutex
	byCall map[string]*mapping
	byGate map[netip.AddrPort]string // a gate's RTP address:port → Call-ID
}

type mapping struct {
	callID, session string
	gateA, gateB    netip.AddrPort
}

// newMappings checks that sb can be described to the module and rebuilds
// the table from the sessions' labels.
func newMappings(sessions Sessions, sb *switchboard.Switchboard, log *slog.Logger) (*mappings, error) {
	base, err := describe(sb)
	if err != nil {
		return nil, err
	}
	t := &mappings{sessions: sessions, sb: sb, base: base, log: log, now: time.Now,
		byCall: map[string]*mapping{}, byGate: map[netip.AddrPort]string{}}
	for _, s := range sessions.List() { // oldest first: a newer duplicate wins
		if id := s.Labels[LabelCallID]; id != "" && s.Switchboard == sb.Name {
			if old := t.byCall[id]; old != nil {
				t.forget(old)
			}
			t.add(&mapping{callID: id, session: s.ID, gateA: s.GateA, gateB: s.GateB})
		}
	}
	return t, nil
}

// describe lays sb out in the module's model: one port range shared by an
// internal and an external address. The internal address is the gate named
// "internal" (else gate-b), the external one the other gate. The range is
// the ports both gates have, from an even port, ending at the last port
// the module's counter may reach (it wraps after passing the end). The
// module writes the addresses into the SDP, so they are the gates' public
// (advertised) ones.
func describe(sb *switchboard.Switchboard) (NodeConfig, error) {
	internal, external := sb.B.Public(), sb.A.Public()
	if strings.EqualFold(sb.A.Name, "internal") || strings.EqualFold(sb.B.Name, "external") {
		internal, external = sb.A.Public(), sb.B.Public()
	}
	if !internal.Is4() || !external.Is4() || internal == external {
		return NodeConfig{}, fmt.Errorf("lrkproxy: switchboard %q: the module needs two distinct IPv4 gates, not %s and %s",
			sb.Name, sb.A.Addr, sb.B.Addr)
	}
	first := int32(max(sb.A.Ports.First, sb.B.Ports.First))
	first += first % 2
	last := int32(min(sb.A.Ports.Last, sb.B.Ports.Last))
	if first+step-1 > last {
		return NodeConfig{}, fmt.Errorf("lrkproxy: switchboard %q: gate ports %s and %s share no %d consecutive ports",
			sb.Name, sb.A.Ports, sb.B.Ports, step)
	}
	end := first + (last-first-(step-1))/step*step
	return NodeConfig{StartPort: first, EndPort: end, InternalIP: internal, ExternalIP: external}, nil
}

func (t *mappings) add(m *mapping) {
	t.byCall[m.callID] = m
	t.byGate[m.gateA], t.byGate[m.gateB] = m.callID, m.callID
}

func (t *mappings) forget(m *mapping) {
	if t.byCall[m.callID] == m {
		delete(t.byCall, m.callID)
	}
	for _, g := range []netip.AddrPort{m.gateA, m.gateB} {
		if t.byGate[g] == m.callID {
			delete(t.byGate, g)
		}
	}
}

// config is the G reply: the layout and where the module's counter should
// go on from (after the newest call, at a step whose ports are free).
func (t *mappings) config() NodeConfig {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.base
	used := map[netip.AddrPort]bool{}
	next := c.StartPort
	for _, s := range t.sessions.List() { // oldest first
		used[s.GateA], used[s.GateB] = true, true
		if p := int32(max(s.GateA.Port(), s.GateB.Port())); t.byCall[s.Labels[LabelCallID]] != nil && p >= c.StartPort {
			next = c.StartPort + ((p-c.StartPort)/step+1)*step
		}
	}
	steps := (c.EndPort-c.StartPort)/step + 1
	for i := range steps {
		p := c.StartPort + ((next-c.StartPort)/step+i)%steps*step
		if t.stepFree(used, p) {
			c.CurrentPort = p
			return c
		}
	}
	c.CurrentPort = c.StartPort + (next-c.StartPort)%(steps*step)
	return c
}

func (t *mappings) stepFree(used map[netip.AddrPort]bool, p int32) bool {
	for off := int32(0); off < step; off += 2 {
		for _, a := range []netip.Addr{t.sb.A.Addr, t.sb.B.Addr} {
			if used[netip.AddrPortFrom(a, uint16(p+off))] {
				return false
			}
		}
	}
	return true
}

// orient maps the module's fields onto the switchboard: the relay address
// the caller sends to (SNAT) and the one the callee sends to (Dst) tell
// which peer is on which gate. The module names a gate by the address it
// was told (describe: the public one); its local address is taken too.
func (t *mappings) orient(m Mapping) (portA, portB uint16, a, b switchboard.Endpoint, err error) {
	if m.SNATPort == 0 || m.DstPort == 0 {
		return 0, 0, a, b, fmt.Errorf("%w: snat_port %d, dst_port %d", errNoPorts, m.SNATPort, m.DstPort)
	}
	caller, callee := endpoint(m.Src, m.SrcPort), endpoint(m.DNAT, m.DNATPort)
	isA := func(x netip.Addr) bool { return x == t.sb.A.Addr || x == t.sb.A.Public() }
	isB := func(x netip.Addr) bool { return x == t.sb.B.Addr || x == t.sb.B.Public() }
	switch {
	case isA(m.SNAT) && isB(m.Dst):
		return m.SNATPort, m.DstPort, caller, callee, nil
	case isB(m.SNAT) && isA(m.Dst):
		return m.DstPort, m.SNATPort, callee, caller, nil
	}
	return 0, 0, a, b, fmt.Errorf("%w: snat_ipv4 %s, dst_ipv4 %s; switchboard %q has %s and %s",
		errNotGates, m.SNAT, m.Dst, t.sb.Name, t.sb.A.Addr, t.sb.B.Addr)
}

func endpoint(ip netip.Addr, port uint16) switchboard.Endpoint {
	if !ip.IsValid() || port == 0 {
		return switchboard.Endpoint{}
	}
	return switchboard.Endpoint{RTP: netip.AddrPortFrom(ip, port)}
}

// set applies S: the call's session on exactly the module's ports, with the
// peers from the SDP (the gates then learn their real sources as every
// session does). S again with the same ports updates the peers (the module
// repeats S for every answer); new ports (a re-INVITE through Kamailio 5.6
// takes new ones) move the call to a new session and end the old one.
func (t *mappings) set(ctx context.Context, m Mapping) error {
	portA, portB, a, b, err := t.orient(m)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.byCall[m.CallID]
	if old != nil && old.gateA.Port() == portA && old.gateB.Port() == portB {
		_, err := t.sessions.Update(ctx, old.session, switchboard.UpdateRequest{A: known(a), B: known(b)})
		if !errors.Is(err, switchboard.ErrNotFound) {
			return err
		}
		t.forget(old) // ended meanwhile (media timeout): install it again
		old = nil
	}
	s, err := t.alloc(ctx, m, a, b, portA, portB)
	if err != nil {
		return err
	}
	t.log.Info("lrkproxy: call installed", "call_id", m.CallID, "session", s.ID, "gate_a", s.GateA, "gate_b", s.GateB)
	if old != nil && t.byCall[m.CallID] == old {
		t.remove(ctx, old, "moved to new ports")
	}
	t.add(&mapping{callID: m.CallID, session: s.ID, gateA: s.GateA, gateB: s.GateB})
	return nil
}

func known(e switchboard.Endpoint) *switchboard.Endpoint {
	if !e.RTP.IsValid() {
		return nil
	}
	return &e
}

// alloc allocates the session on the requested ports. The module's counter
// goes round the range regardless of what is in use, so a pair may still
// belong to an earlier call of the module: that call's session is ended
// when it is this call's own, or when it has no media and was last
// signalled longer ago than the S's timeout (Kamailio 5.6 never sends D, so
// ended calls linger until the media timeout). A pair held by a call with
// media or answered just now (the module's counter is shared by Kamailio's
// processes without a lock, so two calls can be given the same ports), or
// held by another front end, is refused.
func (t *mappings) alloc(ctx context.Context, m Mapping, a, b switchboard.Endpoint, portA, portB uint16) (*switchboard.Session, error) {
	callID := m.CallID
	r := switchboard.AllocRequest{Switchboard: t.sb.Name, A: a, B: b, Labels: map[string]string{LabelCallID: callID}}
	s, err := t.sessions.AllocPorts(ctx, r, portA, portB)
	if !errors.Is(err, switchboard.ErrPortInUse) {
		return s, err
	}
	var holders []*mapping // all checked before any is ended
	for _, g := range []netip.AddrPort{netip.AddrPortFrom(t.sb.A.Addr, portA), netip.AddrPortFrom(t.sb.B.Addr, portB)} {
		holder := t.byCall[t.byGate[g]]
		if holder == nil {
			continue
		}
		if holder.callID != callID {
			if live, lerr := t.inUse(ctx, holder, m.Timeout); lerr != nil || live {
				return nil, errors.Join(fmt.Errorf("call %q: %s: %w", holder.callID, g, errLiveHolder), lerr)
			}
		}
		holders = append(holders, holder)
	}
	for _, h := range holders {
		t.remove(ctx, h, "its ports were given to call "+callID)
	}
	return t.sessions.AllocPorts(ctx, r, portA, portB)
}

// inUse reports whether m's call may still be going on: it has media, or
// was signalled within timeout seconds (60 if unset).
func (t *mappings) inUse(ctx context.Context, m *mapping, timeout int) (bool, error) {
	d, err := t.sessions.Show(ctx, m.session)
	if errors.Is(err, switchboard.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if timeout <= 0 {
		timeout = 60
	}
	if t.now().Sub(d.Updated) < time.Duration(timeout)*time.Second {
		return true, nil
	}
	for _, l := range d.Legs {
		if l.Flows > 0 {
			return true, nil
		}
	}
	return false, nil
}

// remove ends m's session; called with t.mu held.
func (t *mappings) remove(ctx context.Context, m *mapping, why string) {
	if err := t.sessions.Delete(ctx, m.session); err != nil && !errors.Is(err, switchboard.ErrNotFound) {
		t.log.Warn("lrkproxy: deleting a session failed", "call_id", m.callID, "session", m.session, "err", err)
		return
	}
	t.forget(m)
	t.log.Info("lrkproxy: call removed", "call_id", m.callID, "session", m.session, "why", why)
}

// ended forgets the call of the ended session s (media timeout: with
// Kamailio 5.6, which never sends D, that is how every call ends), so the
// table does not grow without bound.
func (t *mappings) ended(s *switchboard.Session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m := t.byCall[s.Labels[LabelCallID]]; m != nil && m.session == s.ID {
		t.forget(m)
	}
}

// del applies D: the call's session ends. An unknown Call-ID is not an
// error (D is repeated for every hangup and CANCEL).
func (t *mappings) del(ctx context.Context, m Mapping) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.byCall[m.CallID]
	if old == nil {
		return nil
	}
	if err := t.sessions.Delete(ctx, old.session); err != nil && !errors.Is(err, switchboard.ErrNotFound) {
		return err
	}
	t.forget(old)
	t.log.Info("lrkproxy: call removed", "call_id", m.CallID, "session", old.session, "why", "D")
	return nil
}
