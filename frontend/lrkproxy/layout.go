package lrkproxy

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Sessions is what the front end reads of the session manager: the ports
// in use, for G's counter. *switchboard.Manager satisfies it.
type Sessions interface {
	List() []*switchboard.Session
}

var _ Sessions = (*switchboard.Manager)(nil)

// step is how far the module's port counter moves per call (gt=0: the
// callee-facing port P and the caller-facing P+2, each with RTCP on the
// next port). With gt=1 it moves by 2 and uses P on both gates; a range
// laid out for 4 suits both.
const step = 4

// layout is the module's model of the switchboard the front end installs
// calls on; the calls themselves live in the call layer.
type layout struct {
	calls    *calls.Calls
	sessions Sessions
	sb       *switchboard.Switchboard
	base     NodeConfig // without CurrentPort

	mu  sync.Mutex
	now func() time.Time // a test seam
}

// newLayout checks that sb can be described to the module.
func newLayout(c *calls.Calls, sessions Sessions, sb *switchboard.Switchboard) (*layout, error) {
	base, err := describe(sb)
	if err != nil {
		return nil, err
	}
	return &layout{calls: c, sessions: sessions, sb: sb, base: base, now: time.Now}, nil
}

func (t *layout) clock() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.now()
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

// config is the G reply: the layout and where the module's counter should
// go on from (after the newest call, at a step whose ports are free).
func (t *layout) config() NodeConfig {
	c := t.base
	ours := t.calls.SessionsOf(calls.LRKProxy)
	used := map[netip.AddrPort]bool{}
	next := c.StartPort
	for _, s := range t.sessions.List() { // oldest first
		used[s.GateA], used[s.GateB] = true, true
		if p := int32(max(s.GateA.Port(), s.GateB.Port())); ours[s.ID] && p >= c.StartPort {
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

func (t *layout) stepFree(used map[netip.AddrPort]bool, p int32) bool {
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
func (t *layout) orient(m Mapping) (portA, portB uint16, a, b switchboard.Endpoint, err error) {
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
// takes new ones) move the call to a new session and end the old one. The
// module's counter goes round the range regardless of what is in use, so a
// pair may still belong to an earlier call of the module: that call's
// session is ended when it is this call's own, or when it has no media and
// was last signalled longer ago than the S's timeout (Kamailio 5.6 never
// sends D, so ended calls linger until the media timeout). A pair held by
// a call with media or answered just now (the module's counter is shared
// by Kamailio's processes without a lock, so two calls can be given the
// same ports), or held by another front end, is refused.
func (t *layout) set(ctx context.Context, m Mapping) (*calls.PairResult, error) {
	portA, portB, a, b, err := t.orient(m)
	if err != nil {
		return nil, err
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 60
	}
	return t.calls.SetPair(ctx, calls.PairRequest{CallID: m.CallID, Switchboard: t.sb.Name, PortA: portA, PortB: portB,
		A: a, B: b, IdleSince: t.clock().Add(-time.Duration(timeout) * time.Second)})
}
