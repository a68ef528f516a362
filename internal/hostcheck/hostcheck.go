package hostcheck

import (
	"fmt"
	"net/netip"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Severity tells whether a finding stops the daemon.
type Severity int

const (
	// Warn: the relay can serve, but something will go wrong for some
	// calls or some of the time.
	Warn Severity = iota
	// Refuse: serving would be broken; the daemon does not start.
	Refuse
)

// String returns "warn" or "refuse".
func (s Severity) String() string {
	if s == Refuse {
		return "refuse"
	}
	return "warn"
}

// Finding is one problem of the host: what is wrong and its effect, and
// the change that fixes it.
type Finding struct {
	// Check is the stable name of the check (see the package doc).
	Check    string
	Severity Severity
	// What names the setting or object and the effect on calls.
	What string
	// Fix is what the operator runs or changes.
	Fix string
}

// String formats f as one line for logs and -check.
func (f Finding) String() string {
	return fmt.Sprintf("%s: %s: %s; fix: %s", f.Severity, f.Check, f.What, f.Fix)
}

// Refused reports whether any finding refuses to serve.
func Refused(fs []Finding) bool {
	for _, f := range fs {
		if f.Severity == Refuse {
			return true
		}
	}
	return false
}

// Readings are what the checks look at, taken from one network namespace.
type Readings struct {
	// Addrs are the addresses of the host's interfaces.
	Addrs []netip.Addr
	// Sysctls by dotted name ("net.ipv4.ip_forward"); a setting the kernel
	// lacks is absent.
	Sysctls map[string]string
	// Chains are the base chains of other tables at the forward hook.
	Chains []Chain
	// Problems are readings that failed, each naming what could not be
	// read; the checks that need them are skipped.
	Problems []string
}

// Chain is a base chain of another table at the forward hook, as far as
// the checks need it.
type Chain struct {
	Family string // "ip", "ip6" or "inet"
	Table  string
	Name   string
	// PolicyDrop reports a drop policy: a packet no rule accepts is dropped.
	PolicyDrop bool
	// DropsAll reports a rule that drops (or rejects) every packet that
	// reaches it, with no match before its verdict.
	DropsAll bool
	// AcceptsRelay reports a rule, before any that drops all, accepting
	// packets by their conntrack mark or zone: what the fix adds.
	AcceptsRelay bool
}

// Gate is one gate of a switchboard, as the checks name it.
type Gate struct {
	Switchboard string
	Side        string // "gate-a" or "gate-b"
	Addr        netip.Addr
	Ports       switchboard.PortRange
}

func (g Gate) String() string {
	return fmt.Sprintf("switchboard %q %s %s ports %s", g.Switchboard, g.Side, g.Addr, g.Ports)
}

// Gates lists the gates of cfg in file order.
func Gates(cfg *switchboard.Config) []Gate {
	var out []Gate
	for _, sb := range cfg.Switchboards {
		out = append(out,
			Gate{Switchboard: sb.Name, Side: "gate-a", Addr: sb.A.Addr, Ports: sb.A.Ports},
			Gate{Switchboard: sb.Name, Side: "gate-b", Addr: sb.B.Addr, Ports: sb.B.Ports})
	}
	return out
}

// Evaluate runs every check over r for cfg's gates and returns the
// findings, refusals first, in a stable order.
func Evaluate(cfg *switchboard.Config, r Readings) []Finding {
	gates := Gates(cfg)
	var out []Finding
	for _, p := range r.Problems {
		out = append(out, Finding{Check: "unreadable", Severity: Warn, What: p,
			Fix: "run the daemon as root (CAP_NET_ADMIN) in the namespace it serves"})
	}
	for _, check := range []func([]Gate, Readings) []Finding{
		checkAddresses, checkEphemeral, checkForwarding, checkForwardDrop,
		checkConntrack, checkConntrackMax,
	} {
		out = append(out, check(gates, r)...)
	}
	var refused, warned []Finding
	for _, f := range out {
		if f.Severity == Refuse {
			refused = append(refused, f)
		} else {
			warned = append(warned, f)
		}
	}
	return append(refused, warned...)
}

// sysctlLine is the command that sets name to value now; the same
// "name = value" line in /etc/sysctl.d/ keeps it across reboots.
func sysctlLine(name, value string) string {
	return fmt.Sprintf("sysctl -w %s=%s (and %q in /etc/sysctl.d/nftrtpproxy.conf)", name, value, name+" = "+value)
}

// families returns whether any gate is IPv4, and any IPv6.
func families(gates []Gate) (v4, v6 bool) {
	for _, g := range gates {
		if g.Addr.Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}
