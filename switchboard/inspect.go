package switchboard

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

// LegStats is one installed leg with the conntrack counters of its flows.
type LegStats struct {
	Name    string         `json:"name"` // "a-rtp", "a-rtcp", "b-rtp", "b-rtcp": where packets enter
	Mark    string         `json:"mark"`
	Gate    netip.AddrPort `json:"gate"`
	Peer    netip.AddrPort `json:"peer,omitzero"`
	Source  netip.AddrPort `json:"source"`
	Lock    netip.AddrPort `json:"lock,omitzero"`
	Flows   int            `json:"flows"`
	Packets uint64         `json:"packets"`
	Bytes   uint64         `json:"bytes"`
	// LastPacket is when the leg last carried a packet, to the second (from
	// the conntrack timeouts of its flows); zero when it has no flow.
	LastPacket time.Time `json:"last_packet,omitzero"`
	// From lists the sources of the leg's current flows.
	From []netip.AddrPort `json:"from,omitempty"`
}

// Details is a session with its legs and counters. A leg's counters are
// those of its live conntrack entries plus the final counters of its
// ended ones (Session.Ended). Its Session is the committed one: read-only.
type Details struct {
	*Session
	Legs []LegStats `json:"legs"`
}

var legNames = [legsPerSession]string{"a-rtp", "a-rtcp", "b-rtp", "b-rtcp"}

// Show returns a session with the state and counters of its legs.
func (m *Manager) Show(ctx context.Context, id string) (*Details, error) {
	m.mu.Lock()
	e, err := m.get(id)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	legs := m.installed(e)
	s := e.s
	known, marks := m.knownFlows(e, legs)
	m.mu.Unlock()
	d := &Details{Session: s}
	for i, l := range legs {
		ls := LegStats{Name: legNames[i], Mark: fmt.Sprintf("%#x", l.Mark),
			Gate: l.Gate, Peer: l.Peer, Source: l.Source, Lock: l.Lock}
		if s.Ended != nil {
			ls.Packets, ls.Bytes = s.Ended[i].Packets, s.Ended[i].Bytes
		}
		d.Legs = append(d.Legs, ls)
	}
	flows, err := m.readFlows(ctx, known, marks)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", id, err)
	}
	now := m.now()
	for _, f := range flows {
		for i := range legs {
			if legs[i].Mark == f.Mark {
				ls := &d.Legs[i]
				ls.Flows++
				ls.Packets += f.Packets
				ls.Bytes += f.Bytes
				ls.From = append(ls.From, f.Src)
				if last := now.Add(-f.Idle).Truncate(time.Second); last.After(ls.LastPacket) {
					ls.LastPacket = last
				}
			}
		}
	}
	return d, nil
}

// knownFlows returns the flows of e's legs that the watch has reported, to
// be read by tuple, and the marks of the legs whose flows are not all known,
// to be dumped: every leg's while the watch is not running. Called with
// m.mu held.
func (m *Manager) knownFlows(e *entry, legs []relay.Leg) (known []relay.Flow, marks []uint32) {
	for k, l := range legs {
		switch {
		case !m.watching.Load() || e.unknownFlows&(1<<k) != 0:
			marks = append(marks, l.Mark)
		case e.flows != nil:
			known = append(known, e.flows[k]...)
		}
	}
	return known, marks
}

// readFlows reads the known flows by tuple and the flows of marks by a
// dump of the conntrack table (a walk of all of it, ~5 ms on a machine
// with 4 GiB or more). A flow created a moment ago whose event the watch
// has not yet delivered is missed; it carried next to nothing.
func (m *Manager) readFlows(ctx context.Context, known []relay.Flow, marks []uint32) ([]relay.Flow, error) {
	var flows []relay.Flow
	if len(known) > 0 {
		f, err := m.dp.Lookup(ctx, known...)
		if err != nil {
			return nil, err
		}
		flows = f
	}
	if len(marks) > 0 {
		f, err := m.dp.Flows(ctx, marks...)
		if err != nil {
			return nil, err
		}
		flows = append(flows, f...)
	}
	return flows, nil
}

// Direction says which way media crosses a switchboard.
type Direction string

// Directions of Find.
const (
	AToB Direction = "a-to-b"
	BToA Direction = "b-to-a"
)

// Route is a switchboard and the direction that joins two gates.
type Route struct {
	Switchboard string    `json:"switchboard"`
	Direction   Direction `json:"direction"`
}

// Find returns the switchboards joining from and to, each a gate name or a
// gate address: media entering at from and leaving at to.
func (m *Manager) Find(from, to string) ([]Route, error) {
	if from == "" || to == "" {
		return nil, fmt.Errorf("%w: find needs two gates (names or addresses)", ErrInvalid)
	}
	var out []Route
	for _, sb := range m.cfg.Switchboards {
		switch {
		case gateIs(sb.A, from) && gateIs(sb.B, to):
			out = append(out, Route{sb.Name, AToB})
		case gateIs(sb.B, from) && gateIs(sb.A, to):
			out = append(out, Route{sb.Name, BToA})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no switchboard joins %q and %q: %w", from, to, ErrUnknownSwitchboard)
	}
	return out, nil
}

func gateIs(g Gate, s string) bool {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap() == g.Addr
	}
	return g.Name != "" && strings.EqualFold(g.Name, s)
}
