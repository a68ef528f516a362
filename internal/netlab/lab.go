package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
)

// Options tune a lab. The zero value builds the standard lab.
type Options struct{}

// Lab is caller <-> router <-> callee. The router's addresses are where a
// relay's gates live: RouterExt* faces the caller, RouterInt* the callee.
type Lab struct {
	Name                   string
	Caller, Router, Callee *NS

	CallerAddr, RouterExtAddr   netip.Addr
	CalleeAddr, RouterIntAddr   netip.Addr
	CallerAddr6, RouterExtAddr6 netip.Addr
	CalleeAddr6, RouterIntAddr6 netip.Addr
}

// RandomSuffix returns 6 random hex characters.
func RandomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Available reports why labs cannot be built here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("not root (network namespaces need CAP_SYS_ADMIN)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the ip command (iproute2) is missing")
	}
	return nil
}

// New builds a lab. On error nothing is left behind.
func New(ctx context.Context, opts Options) (*Lab, error) {
	if err := Available(); err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	sfx := RandomSuffix()
	l := &Lab{Name: sfx,
		Caller: &NS{Name: "nrp-caller-" + sfx}, Router: &NS{Name: "nrp-router-" + sfx}, Callee: &NS{Name: "nrp-callee-" + sfx},
		CallerAddr: netip.MustParseAddr("192.0.2.10"), RouterExtAddr: netip.MustParseAddr("192.0.2.1"),
		CalleeAddr: netip.MustParseAddr("10.0.0.10"), RouterIntAddr: netip.MustParseAddr("10.0.0.1"),
		CallerAddr6: netip.MustParseAddr("2001:db8:a::10"), RouterExtAddr6: netip.MustParseAddr("2001:db8:a::1"),
		CalleeAddr6: netip.MustParseAddr("2001:db8:b::10"), RouterIntAddr6: netip.MustParseAddr("2001:db8:b::1"),
	}
	if err := l.build(ctx, sfx); err != nil {
		_ = l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Lab) build(ctx context.Context, sfx string) error {
	for _, ns := range []*NS{l.Caller, l.Router, l.Callee} {
		if err := ipCmd(ctx, "netns", "add", ns.Name); err != nil {
			return err
		}
		if _, err := ns.Run(ctx, "ip", "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	ext, int := "nrpe"+sfx, "nrpi"+sfx
	links := []struct {
		name        string
		peer        *NS
		peerAddrs   []string
		routerAddrs []string
	}{
		{ext, l.Caller, []string{l.CallerAddr.String() + "/24", l.CallerAddr6.String() + "/64"},
			[]string{l.RouterExtAddr.String() + "/24", l.RouterExtAddr6.String() + "/64"}},
		{int, l.Callee, []string{l.CalleeAddr.String() + "/24", l.CalleeAddr6.String() + "/64"},
			[]string{l.RouterIntAddr.String() + "/24", l.RouterIntAddr6.String() + "/64"}},
	}
	for _, k := range links {
		if err := ipCmd(ctx, "link", "add", k.name+"p", "netns", k.peer.Name, "type", "veth", "peer", "name", k.name+"r", "netns", l.Router.Name); err != nil {
			return err
		}
		if err := k.peer.addrs(ctx, k.name+"p", k.peerAddrs); err != nil {
			return err
		}
		if err := l.Router.addrs(ctx, k.name+"r", k.routerAddrs); err != nil {
			return err
		}
	}
	if err := l.routes(ctx); err != nil {
		return err
	}
	return l.Router.sysctls(ctx)
}

func (l *Lab) routes(ctx context.Context) error {
	for _, r := range [][]string{
		{l.Caller.Name, l.RouterExtAddr.String()}, {l.Caller.Name, l.RouterExtAddr6.String()},
		{l.Callee.Name, l.RouterIntAddr.String()}, {l.Callee.Name, l.RouterIntAddr6.String()},
	} {
		if err := ipCmd(ctx, "-n", r[0], "route", "add", "default", "via", r[1]); err != nil {
			return err
		}
	}
	return nil
}

func (n *NS) addrs(ctx context.Context, dev string, addrs []string) error {
	for _, a := range addrs {
		args := []string{"-n", n.Name, "addr", "add", a, "dev", dev}
		if strings.Contains(a, ":") {
			args = append(args, "nodad")
		}
		if err := ipCmd(ctx, args...); err != nil {
			return err
		}
	}
	return ipCmd(ctx, "-n", n.Name, "link", "set", dev, "up")
}

// sysctls makes the router forward and account: forwarding for both
// families, and conntrack accounting and events (DESIGN: with events=2,
// flows created before a listener subscribed never report).
func (n *NS) sysctls(ctx context.Context) error {
	_ = exec.CommandContext(ctx, "modprobe", "nf_conntrack").Run()
	for _, s := range []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
		"net.netfilter.nf_conntrack_acct=1", "net.netfilter.nf_conntrack_events=1"} {
		if out, err := n.Run(ctx, "sysctl", "-qw", s); err != nil {
			return fmt.Errorf("netlab: %s: sysctl %s: %w: %s", n.Name, s, err, out)
		}
	}
	return nil
}

// Close deletes the lab's namespaces; it is idempotent.
func (l *Lab) Close() error {
	var errs []error
	for _, ns := range []*NS{l.Caller, l.Router, l.Callee} {
		if _, err := os.Stat("/run/netns/" + ns.Name); err != nil {
			continue
		}
		if err := ipCmd(context.Background(), "netns", "del", ns.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netlab: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
