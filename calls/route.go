package calls

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Routing: every protocol names where a call's media comes from and goes to
// in its own words (ng's direction, rtpproxy's bridge modifiers, the local
// address towards mediaproxy's signalling address, lrkproxy's relay
// addresses); the call layer turns them into a switchboard and the side
// the offer enters. The default switchboard is tried first, then the
// others in file order.

// routeGates finds the switchboard whose gates are named from and to
// (case-insensitively) among those accept takes (nil: all), and the side
// from is on.
func (c *Calls) routeGates(from, to string, accept func(*switchboard.Switchboard) bool) (*switchboard.Switchboard, switchboard.Side, bool) {
	for _, sb := range c.boards {
		switch {
		case accept != nil && !accept(sb):
		case strings.EqualFold(sb.A.Name, from) && strings.EqualFold(sb.B.Name, to):
			return sb, switchboard.SideA, true
		case strings.EqualFold(sb.B.Name, from) && strings.EqualFold(sb.A.Name, to):
			return sb, switchboard.SideB, true
		}
	}
	return nil, "", false
}

// routeSDP finds the switchboard and the side an SDP from dir[0] to dir[1]
// enters (ng's direction); without a direction, gate-a of the default
// switchboard.
func (c *Calls) routeSDP(dir [2]string) (string, switchboard.Side, error) {
	if dir[0] == "" && dir[1] == "" {
		if c.def == "" {
			return "", "", fmt.Errorf("%w: no direction given and no default-switchboard configured", ErrNoRoute)
		}
		return c.def, switchboard.SideA, nil
	}
	if sb, side, ok := c.routeGates(dir[0], dir[1], nil); ok {
		return sb.Name, side, nil
	}
	return "", "", fmt.Errorf("%w: no switchboard has gates %q and %q", ErrNoRoute, dir[0], dir[1])
}

// Bridge names the networks a per-stream offer comes from and goes to
// (rtpproxy's bridge modifiers) and the address family it asks for.
type Bridge struct {
	From, To string
	IPv6     bool
}

// routeBridge picks the switchboard of a new stream and the side of its
// creator: one whose gates are named after the networks (of the family
// asked for); failing that the default switchboard with gate-a facing
// "external".
func (c *Calls) routeBridge(b Bridge) (*switchboard.Switchboard, switchboard.Side, error) {
	family := func(sb *switchboard.Switchboard) bool { return sb.A.Addr.Is6() == b.IPv6 }
	if sb, side, ok := c.routeGates(b.From, b.To, family); ok {
		return sb, side, nil
	}
	if sb := c.board(c.def); sb != nil && family(sb) && b.From != b.To {
		if b.From == "external" {
			return sb, switchboard.SideA, nil
		}
		return sb, switchboard.SideB, nil
	}
	fam := "IPv4"
	if b.IPv6 {
		fam = "IPv6"
	}
	return nil, "", fmt.Errorf("%w: no %s switchboard joins gates %q and %q, and the default switchboard %q cannot serve",
		ErrNoRoute, fam, b.From, b.To, c.def)
}

// routeLocal finds the switchboard with a gate at local, the address the
// kernel sends from towards a party (mediaproxy's signalling address), and
// that gate's side.
func (c *Calls) routeLocal(local netip.Addr) (*switchboard.Switchboard, switchboard.Side, bool) {
	for _, sb := range c.boards {
		switch local {
		case sb.A.Addr:
			return sb, switchboard.SideA, true
		case sb.B.Addr:
			return sb, switchboard.SideB, true
		}
	}
	return nil, "", false
}
