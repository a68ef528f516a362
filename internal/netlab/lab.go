package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"
)

// Prefix lengths of the lab's two networks.
const (
	bits4 = 24
	bits6 = 64
)

// closeTimeout bounds how long Close waits for commands and for processes
// inside the lab to die.
const closeTimeout = 30 * time.Second

// Options tune a lab. The zero value builds the standard lab.
type Options struct {
	// ExtraCallerAddrs are added to the caller's interface next to
	// CallerAddr and CallerAddr6, as if more hosts shared the caller's
	// network (a stranger for RTP Bleed tests, a NAT's public side). Each
	// must lie in 192.0.2.0/24 or 2001:db8:a::/64 and differ from the lab's
	// own addresses.
	ExtraCallerAddrs []netip.Addr
	// ExtraCalleeAddrs are the same on the callee's network, 10.0.0.0/24 or
	// 2001:db8:b::/64.
	ExtraCalleeAddrs []netip.Addr
}

// Lab is caller <-> router <-> callee, three namespaces built from two veth
// pairs. The router's addresses are where a relay's gates live: RouterExt*
// faces the caller (gate-a), RouterInt* the callee (gate-b).
//
// The fields describe the lab and must not be changed. Close is safe to call
// from several goroutines and more than once.
type Lab struct {
	// Name is the random suffix shared by the lab's namespace and
	// interface names.
	Name                   string
	Caller, Router, Callee *NS

	// IPv4 addresses: caller and router on 192.0.2.0/24, router and callee
	// on 10.0.0.0/24.
	CallerAddr, RouterExtAddr netip.Addr
	CalleeAddr, RouterIntAddr netip.Addr
	// IPv6 addresses: caller and router on 2001:db8:a::/64, router and
	// callee on 2001:db8:b::/64, all without duplicate address detection.
	CallerAddr6, RouterExtAddr6 netip.Addr
	CalleeAddr6, RouterIntAddr6 netip.Addr

	// Interface names, each at most 15 bytes: CallerIf (in Caller) and
	// RouterExtIf (in Router) are one veth pair, RouterIntIf (in Router) and
	// CalleeIf (in Callee) the other.
	CallerIf, RouterExtIf, RouterIntIf, CalleeIf string

	mu    sync.Mutex
	owned []*NS // namespaces this lab created and has not deleted yet
}

// RandomSuffix returns 6 random lower-case hex characters, short enough for
// interface names (at most 15 bytes) that embed it.
func RandomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b) // never fails since Go 1.24
	return hex.EncodeToString(b)
}

// New builds a lab: namespaces "nrp-caller-<suffix>", "nrp-router-<suffix>"
// and "nrp-callee-<suffix>", their veths, addresses and routes, and the
// router's sysctls. On error it removes whatever it had built. ctx bounds the
// commands New runs; cancelling it later does not affect the lab.
func New(ctx context.Context, opts Options) (*Lab, error) {
	l := layout(RandomSuffix())
	if err := l.validate(opts); err != nil {
		return nil, err
	}
	if err := preflight(); err != nil {
		return nil, err
	}
	if err := l.build(ctx, opts); err != nil {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	return l, nil
}

// layout returns the addresses and names of a lab with suffix sfx.
func layout(sfx string) *Lab {
	a := netip.MustParseAddr
	return &Lab{
		Name:           sfx,
		Caller:         &NS{Name: "nrp-caller-" + sfx},
		Router:         &NS{Name: "nrp-router-" + sfx},
		Callee:         &NS{Name: "nrp-callee-" + sfx},
		CallerAddr:     a("192.0.2.10"),
		RouterExtAddr:  a("192.0.2.1"),
		CalleeAddr:     a("10.0.0.10"),
		RouterIntAddr:  a("10.0.0.1"),
		CallerAddr6:    a("2001:db8:a::10"),
		RouterExtAddr6: a("2001:db8:a::1"),
		CalleeAddr6:    a("2001:db8:b::10"),
		RouterIntAddr6: a("2001:db8:b::1"),
		CallerIf:       "nrpa" + sfx + "c",
		RouterExtIf:    "nrpa" + sfx + "r",
		RouterIntIf:    "nrpb" + sfx + "r",
		CalleeIf:       "nrpb" + sfx + "c",
	}
}

// validate checks opts against the lab's layout before anything is built.
func (l *Lab) validate(opts Options) error {
	taken := []netip.Addr{l.CallerAddr, l.RouterExtAddr, l.CalleeAddr, l.RouterIntAddr,
		l.CallerAddr6, l.RouterExtAddr6, l.CalleeAddr6, l.RouterIntAddr6}
	check := func(side string, addrs []netip.Addr, nets ...netip.Prefix) error {
		for _, a := range addrs {
			if !slices.ContainsFunc(nets, func(p netip.Prefix) bool { return p.Contains(a) }) {
				return fmt.Errorf("netlab: extra %s address %q: not in %s or %s", side, a, nets[0], nets[1])
			}
			if slices.Contains(taken, a) {
				return fmt.Errorf("netlab: extra %s address %q: already used by the lab", side, a)
			}
			taken = append(taken, a)
		}
		return nil
	}
	if err := check("caller", opts.ExtraCallerAddrs, prefix(l.CallerAddr), prefix(l.CallerAddr6)); err != nil {
		return err
	}
	return check("callee", opts.ExtraCalleeAddrs, prefix(l.CalleeAddr), prefix(l.CalleeAddr6))
}

// prefix returns the lab network that a belongs to.
func prefix(a netip.Addr) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(a, bits4).Masked()
	}
	return netip.PrefixFrom(a, bits6).Masked()
}

// build creates the namespaces, then the links, routes and router settings.
func (l *Lab) build(ctx context.Context, opts Options) error {
	for _, ns := range []*NS{l.Caller, l.Router, l.Callee} {
		if err := l.addNamespace(ctx, ns); err != nil {
			return err
		}
	}
	links := []link{
		{l.Caller, l.CallerIf, l.RouterExtIf,
			append([]netip.Addr{l.CallerAddr, l.CallerAddr6}, opts.ExtraCallerAddrs...),
			[]netip.Addr{l.RouterExtAddr, l.RouterExtAddr6}},
		{l.Callee, l.CalleeIf, l.RouterIntIf,
			append([]netip.Addr{l.CalleeAddr, l.CalleeAddr6}, opts.ExtraCalleeAddrs...),
			[]netip.Addr{l.RouterIntAddr, l.RouterIntAddr6}},
	}
	for _, k := range links {
		if err := l.addLink(ctx, k); err != nil {
			return err
		}
	}
	return l.Router.setupRouter(ctx)
}

// addNamespace creates ns, records that Close must delete it, and brings up
// its loopback.
func (l *Lab) addNamespace(ctx context.Context, ns *NS) error {
	if _, err := os.Stat(ns.Path()); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("netlab: create namespace %q: exists already (or cannot tell: %v)", ns.Name, err)
	}
	// Owned from here on: an `ip netns add` killed half-way by ctx may
	// still leave the namespace's file behind for Close to remove.
	l.mu.Lock()
	l.owned = append(l.owned, ns)
	l.mu.Unlock()
	if err := ipCmd(ctx, "netns", "add", ns.Name); err != nil {
		return fmt.Errorf("netlab: create namespace %q: %w", ns.Name, err)
	}
	if err := ns.setSysctls(nsSysctls[:]); err != nil {
		return err
	}
	if err := ipCmd(ctx, "-n", ns.Name, "link", "set", "lo", "up"); err != nil {
		return fmt.Errorf("netlab: %s: %w", ns.Name, err)
	}
	return nil
}

// link is a veth pair between the router and a peer namespace.
type link struct {
	peer                *NS
	peerIf, routerIf    string
	peerAddrs, gateways []netip.Addr // the router's addresses on the link
}

// addLink creates the veth pair k, addresses both ends and routes the
// peer's traffic via the router.
func (l *Lab) addLink(ctx context.Context, k link) error {
	// Both ends are created directly in their namespaces: the veth never
	// exists in the host's namespace, not even for a moment.
	if err := ipCmd(ctx, "-n", l.Router.Name, "link", "add", k.routerIf, "type", "veth",
		"peer", "name", k.peerIf, "netns", k.peer.Name); err != nil {
		return fmt.Errorf("netlab: %s: veth %s-%s: %w", l.Router.Name, k.routerIf, k.peerIf, err)
	}
	if err := l.Router.configure(ctx, k.routerIf, k.gateways); err != nil {
		return err
	}
	if err := k.peer.configure(ctx, k.peerIf, k.peerAddrs); err != nil {
		return err
	}
	for _, gw := range k.gateways {
		if err := ipCmd(ctx, "-n", k.peer.Name, "route", "add", "default", "via", gw.String()); err != nil {
			return fmt.Errorf("netlab: %s: default route: %w", k.peer.Name, err)
		}
	}
	return nil
}

// configure adds addrs (with the lab's prefix lengths) to dev and sets it up.
func (n *NS) configure(ctx context.Context, dev string, addrs []netip.Addr) error {
	for _, a := range addrs {
		args := []string{"-n", n.Name, "addr", "add", netip.PrefixFrom(a, prefix(a).Bits()).String(), "dev", dev}
		if a.Is6() {
			args = append(args, "nodad")
		}
		if err := ipCmd(ctx, args...); err != nil {
			return fmt.Errorf("netlab: %s: address %s on %s: %w", n.Name, a, dev, err)
		}
	}
	if err := ipCmd(ctx, "-n", n.Name, "link", "set", dev, "up"); err != nil {
		return fmt.Errorf("netlab: %s: %w", n.Name, err)
	}
	return nil
}

// Close kills any process still running in the lab's namespaces and deletes
// them, and with them the veths. It is idempotent: namespaces already gone
// are skipped, and a namespace whose deletion failed is tried again by the
// next Close. A socket still open in a namespace keeps that namespace alive
// but unnamed until the socket is closed.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	var errs []error
	var kept []*NS
	for _, ns := range slices.Backward(l.owned) {
		if err := ns.remove(ctx); err != nil {
			errs = append(errs, err)
			kept = append(kept, ns)
		}
	}
	l.owned = kept
	return errors.Join(errs...)
}
