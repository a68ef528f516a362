package hostcheck

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Sysctl names the checks read.
const (
	sysIPForward      = "net.ipv4.ip_forward"
	sysIP6Forward     = "net.ipv6.conf.all.forwarding"
	sysNonlocal4      = "net.ipv4.ip_nonlocal_bind"
	sysNonlocal6      = "net.ipv6.ip_nonlocal_bind"
	sysPortRange      = "net.ipv4.ip_local_port_range"
	sysReservedPorts  = "net.ipv4.ip_local_reserved_ports"
	sysConntrackMax   = "net.netfilter.nf_conntrack_max"
	sysConntrackAcct  = "net.netfilter.nf_conntrack_acct"
	sysConntrackEvent = "net.netfilter.nf_conntrack_events"
)

// SysctlNames are the settings Read takes.
var SysctlNames = []string{sysIPForward, sysIP6Forward, sysNonlocal4, sysNonlocal6,
	sysPortRange, sysReservedPorts, sysConntrackMax, sysConntrackAcct, sysConntrackEvent}

// checkAddresses refuses a gate whose address is not the host's: nobody
// answers ARP or neighbour solicitations for it, so no media arrives. A
// floating (VRRP) address is missing on the standby by design; with
// ip_nonlocal_bind set for its family (how such setups are usually
// configured) it is only a warning.
func checkAddresses(gates []Gate, r Readings) []Finding {
	if r.Addrs == nil {
		return nil
	}
	var out []Finding
	seen := map[netip.Addr]bool{}
	for _, g := range gates {
		if seen[g.Addr] || slices.Contains(r.Addrs, g.Addr) {
			continue
		}
		seen[g.Addr] = true
		sev, what := Refuse, "no media reaches it: nobody answers ARP or neighbour solicitation for it"
		if r.Sysctls[nonlocalSysctl(g.Addr)] == "1" {
			sev, what = Warn, "media reaches it only once it is added (a floating address under "+nonlocalSysctl(g.Addr)+"=1?)"
		}
		out = append(out, Finding{Check: "gate-address", Severity: sev,
			What: fmt.Sprintf("%s: %s is not an address of this host: %s", g, g.Addr, what),
			Fix:  fmt.Sprintf("add it to an interface (ip address add %s dev IFACE) or configure the gate with a local address; behind 1:1 NAT use the local address and set advertise to the public one", hostPrefix(g.Addr))})
	}
	return out
}

func nonlocalSysctl(a netip.Addr) string {
	if a.Is4() {
		return sysNonlocal4
	}
	return sysNonlocal6
}

func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// checkEphemeral warns of gate ports the kernel may pick as source ports
// of the host's own connections (DNS, RADIUS, SIP over UDP): their replies
// are dropped by the relay's table when the port has no session.
// ip_local_reserved_ports takes ports out of the ephemeral choice.
func checkEphemeral(gates []Gate, r Readings) []Finding {
	eph, ok := parseRange(r.Sysctls[sysPortRange])
	if !ok {
		return nil
	}
	reserved, _ := parsePortList(r.Sysctls[sysReservedPorts])
	var out []Finding
	fix := sysctlLine(sysReservedPorts, formatPortList(mergeRanges(reserved, gateRanges(gates))))
	for _, g := range gates {
		n := unreservedOverlap(portRange{int(g.Ports.First), int(g.Ports.Last)}, eph, reserved)
		if n == 0 {
			continue
		}
		out = append(out, Finding{Check: "ephemeral-ports", Severity: Warn,
			What: fmt.Sprintf("%s overlap the kernel's ephemeral ports %d-%d (%s) in %d ports that %s does not reserve: replies to the host's own connections from those ports are dropped by the relay's table",
				g, eph.first, eph.last, sysPortRange, n, sysReservedPorts),
			Fix: fix})
	}
	return out
}

// checkForwarding warns when the kernel does not forward a gate's family:
// the relay's NAT turns media into forwarded packets.
func checkForwarding(gates []Gate, r Readings) []Finding {
	v4, v6 := families(gates)
	var out []Finding
	for _, c := range []struct {
		use  bool
		name string
		fam  string
	}{{v4, sysIPForward, "IPv4"}, {v6, sysIP6Forward, "IPv6"}} {
		v, ok := r.Sysctls[c.name]
		if !c.use || !ok || v == "1" {
			continue
		}
		out = append(out, Finding{Check: "forwarding", Severity: Warn,
			What: fmt.Sprintf("%s is %q: relayed %s media is not forwarded", c.name, v, c.fam),
			Fix:  sysctlLine(c.name, "1")})
	}
	return out
}

// RelayMarkRule is the nft rule expression that accepts the relay's flows
// by their conntrack mark (every leg's mark carries relay.MarkPrefix).
const RelayMarkRule = "ct mark and 0xff000000 == 0x52000000 accept"

// checkForwardDrop warns of another table's forward chain that drops the
// relay's packets. Every base chain at a hook sees every packet, whatever
// another table accepted, so one drop anywhere eats the media.
func checkForwardDrop(gates []Gate, r Readings) []Finding {
	v4, v6 := families(gates)
	var out []Finding
	for _, c := range r.Chains {
		relevant := c.Family == "inet" || (c.Family == "ip" && v4) || (c.Family == "ip6" && v6)
		if !relevant || c.AcceptsRelay || !(c.PolicyDrop || c.DropsAll) {
			continue
		}
		why := "has policy drop and no rule accepting the relay's flows"
		if c.DropsAll {
			why = "has a rule dropping every packet, and none before it accepting the relay's flows"
		}
		out = append(out, Finding{Check: "forward-drop", Severity: Warn,
			What: fmt.Sprintf("chain %s %s %s (hook forward) %s: all relayed media is dropped", c.Family, c.Table, c.Name, why),
			Fix: fmt.Sprintf("nft insert rule %s %s %s %s (with iptables: iptables -I %s -m connmark --mark 0x52000000/0xff000000 -j ACCEPT)",
				c.Family, c.Table, c.Name, RelayMarkRule, c.Name)})
	}
	return out
}

// checkConntrack warns when conntrack is missing, or its per-flow counters
// or events are off.
func checkConntrack(_ []Gate, r Readings) []Finding {
	acct, okA := r.Sysctls[sysConntrackAcct]
	events, okE := r.Sysctls[sysConntrackEvent]
	if !okA && !okE {
		return []Finding{{Check: "conntrack", Severity: Warn,
			What: "the nf_conntrack sysctls are missing even after loading the module: the relay's table cannot track flows",
			Fix:  "modprobe nf_conntrack (and \"nf_conntrack\" in /etc/modules-load.d/nftrtpproxy.conf)"}}
	}
	var out []Finding
	if okA && acct != "1" {
		out = append(out, Finding{Check: "conntrack-acct", Severity: Warn,
			What: fmt.Sprintf("%s is %q: per-session packet and byte counters stay at zero, and the media timeout sees no media", sysConntrackAcct, acct),
			Fix:  sysctlLine(sysConntrackAcct, "1")})
	}
	if okE && events != "1" {
		what := "flows created before the daemon subscribed (by a previous run) never report their end"
		if events == "0" {
			what = "no flow events: peers behind NAT are never learned and ended flows' counters are lost"
		}
		out = append(out, Finding{Check: "conntrack-events", Severity: Warn,
			What: fmt.Sprintf("%s is %q: %s", sysConntrackEvent, events, what),
			Fix:  sysctlLine(sysConntrackEvent, "1")})
	}
	return out
}

// FlowsPerSession is how many conntrack entries one session can hold: four
// legs (RTP and RTCP in each direction; a zone per direction makes each a
// one-way entry of its own), and each leg briefly a second entry while its
// peer moves (re-INVITE, learning, handover), until the old one is flushed
// or times out.
const FlowsPerSession = 4 * 2

// MaxFlows is how many conntrack entries the relay can need when every
// port pair is in use: FlowsPerSession for each session a switchboard can
// hold, which is the smaller of its two gates' port pairs. The host's own
// flows come on top.
func MaxFlows(gates []Gate) int {
	pairs := map[string][2]int{}
	var order []string
	for _, g := range gates {
		p, ok := pairs[g.Switchboard]
		if !ok {
			order = append(order, g.Switchboard)
		}
		if g.Side == "gate-a" {
			p[0] = g.Ports.Pairs()
		} else {
			p[1] = g.Ports.Pairs()
		}
		pairs[g.Switchboard] = p
	}
	n := 0
	for _, sb := range order {
		n += FlowsPerSession * min(pairs[sb][0], pairs[sb][1])
	}
	return n
}

// checkConntrackMax warns when conntrack's table limit is below MaxFlows:
// past the limit the kernel drops the first packet of every new flow.
func checkConntrackMax(gates []Gate, r Readings) []Finding {
	v, ok := r.Sysctls[sysConntrackMax]
	if !ok {
		return nil
	}
	have, err := strconv.Atoi(v)
	need := MaxFlows(gates)
	if err != nil || have >= need {
		return nil
	}
	return []Finding{{Check: "conntrack-max", Severity: Warn,
		What: fmt.Sprintf("%s is %d, below the %d flows the gates' port ranges can need (%d per session): new calls lose media once the table is full",
			sysConntrackMax, have, need, FlowsPerSession),
		Fix: sysctlLine(sysConntrackMax, strconv.Itoa(need)) + " on the host (a namespace other than the first follows the host's limit), or smaller port ranges"}}
}

// portRange is an inclusive range of ports.
type portRange struct{ first, last int }

func parseRange(s string) (portRange, bool) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return portRange{}, false
	}
	a, err1 := strconv.Atoi(f[0])
	b, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || a > b {
		return portRange{}, false
	}
	return portRange{a, b}, true
}

// parsePortList parses ip_local_reserved_ports: "" or "8080,30000-39999".
func parsePortList(s string) ([]portRange, bool) {
	var out []portRange
	for _, item := range strings.Split(strings.TrimSpace(s), ",") {
		if item == "" {
			continue
		}
		a, b, isRange := strings.Cut(item, "-")
		if !isRange {
			b = a
		}
		r, ok := parseRange(a + " " + b)
		if !ok {
			return nil, false
		}
		out = append(out, r)
	}
	return out, true
}

func gateRanges(gates []Gate) []portRange {
	var out []portRange
	for _, g := range gates {
		out = append(out, portRange{int(g.Ports.First), int(g.Ports.Last)})
	}
	return out
}

// mergeRanges returns the union of a and b, sorted, adjacent ranges joined.
func mergeRanges(a, b []portRange) []portRange {
	all := append(append([]portRange(nil), a...), b...)
	slices.SortFunc(all, func(x, y portRange) int { return x.first - y.first })
	var out []portRange
	for _, r := range all {
		if n := len(out); n > 0 && r.first <= out[n-1].last+1 {
			out[n-1].last = max(out[n-1].last, r.last)
			continue
		}
		out = append(out, r)
	}
	return out
}

func formatPortList(rs []portRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = strconv.Itoa(r.first)
		if r.last != r.first {
			parts[i] += "-" + strconv.Itoa(r.last)
		}
	}
	return strings.Join(parts, ",")
}

// unreservedOverlap counts the ports of g inside eph and outside reserved.
func unreservedOverlap(g, eph portRange, reserved []portRange) int {
	lo, hi := max(g.first, eph.first), min(g.last, eph.last)
	if lo > hi {
		return 0
	}
	n := hi - lo + 1
	for _, r := range mergeRanges(reserved, nil) {
		if a, b := max(lo, r.first), min(hi, r.last); a <= b {
			n -= b - a + 1
		}
	}
	return n
}
