package hostcheck

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"github.com/nftrtpproxy/nftrtpproxy/internal/netns"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/ti-mo/conntrack"
)

// Options select where the checks look.
type Options struct {
	// NetNS is a file descriptor of the network namespace to check; 0
	// means the calling thread's.
	NetNS int
	// NoModprobe leaves nf_conntrack unloaded when its sysctls are missing
	// (by default the checks load it, as the relay's table would).
	NoModprobe bool
}

// Run reads the host and evaluates every check for cfg. It changes no
// table; it may load nf_conntrack (Options.NoModprobe). Readings that fail
// become "unreadable" findings.
func Run(ctx context.Context, cfg *switchboard.Config, opts Options) []Finding {
	return Evaluate(cfg, Read(ctx, opts))
}

// Read takes the readings of the namespace of opts.
func Read(ctx context.Context, opts Options) Readings {
	var r Readings
	var err error
	if r.Sysctls, err = readSysctls(ctx, opts); err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("sysctls: %v", err))
	}
	if r.Addrs, err = readAddrs(opts.NetNS); err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("addresses: %v", err))
	}
	if r.Chains, err = readChains(opts.NetNS); err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("other tables' forward chains: %v", err))
	}
	return r
}

// readSysctls reads SysctlNames, loading nf_conntrack first when its
// settings are missing: by modprobe, and by opening a conntrack netlink
// socket, which makes the kernel load nf_conntrack_netlink and with it
// nf_conntrack where modprobe is not installed.
func readSysctls(ctx context.Context, opts Options) (map[string]string, error) {
	v, err := netns.ReadSysctls(opts.NetNS, SysctlNames...)
	if err != nil || opts.NoModprobe {
		return v, err
	}
	if _, ok := v[sysConntrackAcct]; ok {
		return v, nil
	}
	_ = exec.CommandContext(ctx, "modprobe", "nf_conntrack").Run()
	if c, err := conntrack.Dial(&netlink.Config{NetNS: opts.NetNS}); err == nil {
		_ = c.Close()
	}
	return netns.ReadSysctls(opts.NetNS, SysctlNames...)
}

// readAddrs lists the interface addresses of the namespace (rtnetlink,
// through the standard library, from a thread inside the namespace).
func readAddrs(fd int) ([]netip.Addr, error) {
	var out []netip.Addr
	list := func() error {
		as, err := net.InterfaceAddrs()
		if err != nil {
			return err
		}
		out = make([]netip.Addr, 0, len(as))
		for _, a := range as {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				out = append(out, p.Addr().Unmap())
			}
		}
		return nil
	}
	if fd == 0 {
		return out, list()
	}
	done := make(chan error, 1)
	go func() { done <- netns.Do(fd, list) }()
	return out, <-done
}

// readChains lists the base chains of other tables at the forward hook, and
// their rules, read-only.
func readChains(fd int) ([]Chain, error) {
	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		return nil, err
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	var out []Chain
	for _, ch := range chains {
		if !forwardChain(ch) {
			continue
		}
		fam, ok := familyName(ch.Table.Family)
		if !ok || (fam == "inet" && ch.Table.Name == relay.TableName) {
			continue
		}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return nil, fmt.Errorf("rules of chain %s %s %s: %w", fam, ch.Table.Name, ch.Name, err)
		}
		k := Chain{Family: fam, Table: ch.Table.Name, Name: ch.Name,
			PolicyDrop: ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop}
		k.AcceptsRelay, k.DropsAll = classify(rules)
		out = append(out, k)
	}
	return out, nil
}

func forwardChain(ch *nftables.Chain) bool {
	return ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookForward && ch.Type == nftables.ChainTypeFilter
}

func familyName(f nftables.TableFamily) (string, bool) {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip", true
	case nftables.TableFamilyIPv6:
		return "ip6", true
	case nftables.TableFamilyINet:
		return "inet", true
	}
	return "", false
}

// classify walks rules in order: whether one accepting by conntrack mark
// or zone comes before any that drops every packet, and whether one drops
// every packet at all.
func classify(rules []*nftables.Rule) (acceptsRelay, dropsAll bool) {
	for _, r := range rules {
		switch {
		case dropsEverything(r.Exprs):
			return false, true
		case acceptsByConntrack(r.Exprs):
			return true, false
		}
	}
	return false, false
}

// dropsEverything reports a rule with no match: only counters and logs
// before a drop verdict or a reject.
func dropsEverything(es []expr.Any) bool {
	for _, e := range es {
		switch e := e.(type) {
		case *expr.Counter, *expr.Log:
		case *expr.Reject:
			return true
		case *expr.Verdict:
			return e.Kind == expr.VerdictDrop
		default:
			return false
		}
	}
	return false
}

// acceptsByConntrack reports an accepting rule that matches the conntrack
// mark or zone (nft's ct expression, or iptables' connmark match).
func acceptsByConntrack(es []expr.Any) bool {
	var ct, accept bool
	for _, e := range es {
		switch e := e.(type) {
		case *expr.Ct:
			ct = ct || e.Key == expr.CtKeyMARK || e.Key == expr.CtKeyZONE
		case *expr.Match:
			ct = ct || e.Name == "connmark"
		case *expr.Verdict:
			accept = e.Kind == expr.VerdictAccept
		}
	}
	return ct && accept
}
