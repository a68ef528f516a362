// Package hostcheck judges whether the host (the network namespace the
// relay works in) can serve the configured switchboards, and says what to
// change where it cannot. The daemon runs it at start and `nftrtpproxy
// -check` runs it too: it only reads (sysctls under /proc/sys, the
// addresses through rtnetlink, other tables' chains through an nftables
// listing) and never changes a table. The one thing it may do is load the
// nf_conntrack module when its sysctls are missing, which is what the
// relay's own table would do a moment later.
//
// The decision logic (Evaluate) is pure and works on Readings, so it is
// tested with fake readings; Read takes the readings from the kernel.
//
// The checks, by their stable names (Finding.Check):
//   - gate-address: a gate address is not an address of the host (refuse,
//     or warn under ip_nonlocal_bind for a floating VRRP address);
//   - ephemeral-ports: a gate range overlaps net.ipv4.ip_local_port_range
//     where net.ipv4.ip_local_reserved_ports does not cover it;
//   - forward-drop: another table's forward chain drops by policy, or by an
//     unconditional rule, what the relay forwards;
//   - conntrack-max: net.netfilter.nf_conntrack_max is below what the
//     ranges can need (MaxFlows);
//   - forwarding: net.ipv4.ip_forward or net.ipv6.conf.all.forwarding is
//     off for a gate's family;
//   - conntrack: the nf_conntrack sysctls are missing even after loading
//     the module;
//   - conntrack-acct, conntrack-events: per-flow counters or events off;
//   - unreadable: a reading failed, so the checks that need it were skipped.
package hostcheck
