package netlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// Pair is a router pair between a caller and a callee network: two routers
// on the same two segments, each segment a bridge in a switch namespace, so
// that an address keepalived moves between the routers is reached through
// whichever holds it. A third segment (sync) joins the routers and the
// switch, where a test runs the Redis both routers use.
//
//	caller ─┐ext┌─ router A ─┐int┌─ callee
//	        └───┴─ router B ─┴───┘
//	           router A, router B ─ sync ─ switch (Redis)
//
// Nothing holds the floating addresses (ExtVIP, IntVIP) until a test's
// keepalived adds them. The caller's and callee's default routes point at
// them. The fields describe the pair and must not be changed. Close is safe
// to call from several goroutines and more than once.
type Pair struct {
	// Name is the random suffix of the pair's namespace and interface names.
	Name                   string
	Caller, Callee, Switch *NS
	Routers                [2]*PairRouter

	CallerAddr, CalleeAddr netip.Addr
	// ExtVIP and IntVIP are the floating gate addresses on the caller's
	// (192.0.2.0/24) and callee's (10.0.0.0/24) segments.
	ExtVIP, IntVIP netip.Addr
	// SwitchAddr is the switch's address on the sync segment.
	SwitchAddr netip.Addr

	lab *Lab // owns the namespaces: its Close deletes them
}

// PairRouter is one router of a pair: its namespace, its own addresses
// and the names of its interfaces on the three segments.
type PairRouter struct {
	NS                   *NS
	ExtAddr, IntAddr     netip.Addr
	SyncAddr             netip.Addr
	ExtIf, IntIf, SyncIf string
	switchExt, switchInt string // the veths' ends in the switch
	switchSync           string
}

// NewPair builds a pair: namespaces "nrp-{caller,callee,switch,ra,rb}-<suffix>",
// bridges, veths, addresses, routes and the routers' sysctls (a lab
// router's, and ip_nonlocal_bind for the floating addresses). On error it
// removes whatever it had built.
func NewPair(ctx context.Context) (*Pair, error) {
	if err := preflight(); err != nil {
		return nil, err
	}
	sfx := RandomSuffix()
	a := netip.MustParseAddr
	p := &Pair{Name: sfx,
		Caller: &NS{Name: "nrp-caller-" + sfx}, Callee: &NS{Name: "nrp-callee-" + sfx}, Switch: &NS{Name: "nrp-switch-" + sfx},
		CallerAddr: a("192.0.2.10"), CalleeAddr: a("10.0.0.10"),
		ExtVIP: a("192.0.2.1"), IntVIP: a("10.0.0.1"), SwitchAddr: a("10.9.0.100"),
		lab: &Lab{Name: sfx}}
	for i, id := range []string{"a", "b"} {
		n := byte(2 + i)
		p.Routers[i] = &PairRouter{NS: &NS{Name: "nrp-r" + id + "-" + sfx},
			ExtAddr: netip.AddrFrom4([4]byte{192, 0, 2, n}), IntAddr: netip.AddrFrom4([4]byte{10, 0, 0, n}),
			SyncAddr: netip.AddrFrom4([4]byte{10, 9, 0, n}),
			ExtIf:    "nrpe" + sfx + id, IntIf: "nrpi" + sfx + id, SyncIf: "nrps" + sfx + id,
			switchExt: "nrpe" + sfx + id + "s", switchInt: "nrpi" + sfx + id + "s", switchSync: "nrps" + sfx + id + "s"}
	}
	if err := p.build(ctx); err != nil {
		return nil, errors.Join(err, p.Close())
	}
	return p, nil
}

// build creates the namespaces, bridges and links.
func (p *Pair) build(ctx context.Context) error {
	for _, ns := range []*NS{p.Switch, p.Caller, p.Callee, p.Routers[0].NS, p.Routers[1].NS} {
		if err := p.lab.addNamespace(ctx, ns); err != nil {
			return err
		}
	}
	bridges := map[string]string{"ext": "nrpbe" + p.Name, "int": "nrpbi" + p.Name, "sync": "nrpbs" + p.Name}
	for _, br := range []string{bridges["ext"], bridges["int"], bridges["sync"]} {
		if err := ipCmd(ctx, "-n", p.Switch.Name, "link", "add", br, "type", "bridge"); err != nil {
			return fmt.Errorf("netlab: %s: bridge %s: %w", p.Switch.Name, br, err)
		}
	}
	if err := p.Switch.configure(ctx, bridges["ext"], nil); err != nil {
		return err
	}
	if err := p.Switch.configure(ctx, bridges["int"], nil); err != nil {
		return err
	}
	if err := p.Switch.configureBits(ctx, bridges["sync"], p.SwitchAddr, 24); err != nil {
		return err
	}
	hosts := []struct {
		ns        *NS
		dev, peer string
		bridge    string
		addr, gw  netip.Addr
		bits      int
		up        bool
	}{
		{p.Caller, "nrpc" + p.Name, "nrpc" + p.Name + "s", bridges["ext"], p.CallerAddr, p.ExtVIP, 24, true},
		{p.Callee, "nrpd" + p.Name, "nrpd" + p.Name + "s", bridges["int"], p.CalleeAddr, p.IntVIP, 24, true},
	}
	for _, h := range hosts {
		if err := p.attach(ctx, h.ns, h.dev, h.peer, h.bridge, h.addr); err != nil {
			return err
		}
		if err := ipCmd(ctx, "-n", h.ns.Name, "route", "add", "default", "via", h.gw.String()); err != nil {
			return fmt.Errorf("netlab: %s: default route: %w", h.ns.Name, err)
		}
	}
	for _, r := range p.Routers {
		for _, l := range []struct {
			dev, peer, bridge string
			addr              netip.Addr
		}{
			{r.ExtIf, r.switchExt, bridges["ext"], r.ExtAddr},
			{r.IntIf, r.switchInt, bridges["int"], r.IntAddr},
			{r.SyncIf, r.switchSync, bridges["sync"], r.SyncAddr},
		} {
			if err := p.attach(ctx, r.NS, l.dev, l.peer, l.bridge, l.addr); err != nil {
				return err
			}
		}
		if err := r.NS.setupRouter(ctx); err != nil {
			return err
		}
		// As a pair's routers are configured: a floating address is
		// missing on the standby by design (the daemon's host checks
		// refuse a gate address that is not local otherwise).
		if err := r.NS.setSysctls([]sysctl{{"net/ipv4/ip_nonlocal_bind", "1"}, {"net/ipv6/ip_nonlocal_bind", "1"}}); err != nil {
			return err
		}
	}
	return nil
}

// attach links dev in ns to bridge in the switch, with addr on dev.
func (p *Pair) attach(ctx context.Context, ns *NS, dev, peer, bridge string, addr netip.Addr) error {
	if err := ipCmd(ctx, "-n", ns.Name, "link", "add", dev, "type", "veth", "peer", "name", peer, "netns", p.Switch.Name); err != nil {
		return fmt.Errorf("netlab: %s: veth %s-%s: %w", ns.Name, dev, peer, err)
	}
	if err := ipCmd(ctx, "-n", p.Switch.Name, "link", "set", peer, "master", bridge, "up"); err != nil {
		return fmt.Errorf("netlab: %s: %s into %s: %w", p.Switch.Name, peer, bridge, err)
	}
	return ns.configureBits(ctx, dev, addr, 24)
}

// configureBits adds addr/bits to dev and sets dev up.
func (n *NS) configureBits(ctx context.Context, dev string, addr netip.Addr, bits int) error {
	if err := ipCmd(ctx, "-n", n.Name, "addr", "add", netip.PrefixFrom(addr, bits).String(), "dev", dev); err != nil {
		return fmt.Errorf("netlab: %s: address %s on %s: %w", n.Name, addr, dev, err)
	}
	if err := ipCmd(ctx, "-n", n.Name, "link", "set", dev, "up"); err != nil {
		return fmt.Errorf("netlab: %s: %w", n.Name, err)
	}
	return nil
}

// SetLinks sets the router's three links down or up, as a router that
// loses power (or comes back) does.
func (r *PairRouter) SetLinks(ctx context.Context, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	for _, dev := range []string{r.ExtIf, r.IntIf, r.SyncIf} {
		if err := ipCmd(ctx, "-n", r.NS.Name, "link", "set", dev, state); err != nil {
			return fmt.Errorf("netlab: %s: %w", r.NS.Name, err)
		}
	}
	return nil
}

// Holds reports whether the router has addr on one of its interfaces.
func (r *PairRouter) Holds(ctx context.Context, addr netip.Addr) (bool, error) {
	out, err := r.NS.Run(ctx, "ip", "-o", "addr", "show", "to", addr.String())
	if err != nil {
		return false, err
	}
	return len(out) > 0, nil
}

// Close kills every process in the pair's namespaces (the daemons,
// keepalived, Redis) and deletes the namespaces, and with them the bridges
// and veths. It is idempotent.
func (p *Pair) Close() error { return p.lab.Close() }
