package switchboard

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// ErrPortInUse: a port pair asked for by number (AllocPorts) belongs to
// another session.
var ErrPortInUse = errors.New("port pair in use")

// AllocPorts is Alloc with the gate ports chosen by the caller rather than
// by the Manager. It exists for control protocols whose client picks the
// relay's ports itself: Kamailio's lrkproxy module counts through the
// range the relay reported and writes the ports into the SDP before it
// tells the relay. portA and portB are RTP ports (RTCP is the next port, as
// for every session). A port that is odd or outside its gate's range is
// ErrInvalid; a pair held by another session is ErrPortInUse. Nothing
// changes on error.
func (m *Manager) AllocPorts(ctx context.Context, r AllocRequest, portA, portB uint16) (*Session, error) {
	if err := m.lockRequest(); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	bd, err := m.allocBoard(r)
	if err != nil {
		return nil, err
	}
	if err := claimPort(bd.sb, "gate-a", bd.sb.A, bd.a, portA); err != nil {
		return nil, err
	}
	if err := claimPort(bd.sb, "gate-b", bd.sb.B, bd.b, portB); err != nil {
		bd.a.release(portA)
		return nil, err
	}
	s, err := m.sessionOn(bd, r, portA, portB)
	if err != nil {
		bd.a.release(portA)
		bd.b.release(portB)
		return nil, err
	}
	c := m.newSessionChange(bd, s)
	if err := m.submit(ctx, newTxn(c)); err != nil {
		return nil, err
	}
	m.logAlloc(s, "session allocated on requested ports")
	return s.clone(), nil
}

func claimPort(sb *Switchboard, which string, g Gate, p *ports, port uint16) error {
	idx, err := p.index(port)
	if err != nil {
		return fmt.Errorf("switchboard %q: %s %s ports %s: %w: %w", sb.Name, which, g.Addr, g.Ports, ErrInvalid, err)
	}
	if p.used[idx] {
		return fmt.Errorf("switchboard %q: %s %s port %d: %w", sb.Name, which, g.Addr, port, ErrPortInUse)
	}
	return p.claim(port)
}

// sessionOn builds a new session on the claimed ports pa and pb; it mirrors
// newSession, which takes its ports from the gates' round-robin.
func (m *Manager) sessionOn(bd *board, r AllocRequest, pa, pb uint16) (*Session, error) {
	idx, err := m.newIndex()
	if err != nil {
		return nil, err
	}
	now := m.now()
	s := &Session{ID: newID(), Switchboard: bd.sb.Name, Index: idx,
		GateA: netip.AddrPortFrom(bd.sb.A.Addr, pa), GateB: netip.AddrPortFrom(bd.sb.B.Addr, pb),
		A: Peer{Signalled: r.A}, B: Peer{Signalled: r.B}, State: Active,
		Created: now, Updated: now, Labels: r.Labels}
	if r.Ringing {
		s.State, s.Expires = Ringing, now.Add(bd.sb.Timeouts.Ringing)
	}
	openLearning(s, bd.sb.Timeouts, now, true, true)
	return s, nil
}
