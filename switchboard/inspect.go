package switchboard

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
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
// ended ones (Session.Ended).
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
	s := e.s.clone()
	m.mu.Unlock()
	d := &Details{Session: s}
	marks := make([]uint32, len(legs))
	for i, l := range legs {
		marks[i] = l.Mark
		ls := LegStats{Name: legNames[i], Mark: fmt.Sprintf("%#x", l.Mark),
			Gate: l.Gate, Peer: l.Peer, Source: l.Source, Lock: l.Lock}
		if s.Ended != nil {
			ls.Packets, ls.Bytes = s.Ended[i].Packets, s.Ended[i].Bytes
		}
		d.Legs = append(d.Legs, ls)
	}
	flows, err := m.dp.Flows(ctx, marks...)
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
