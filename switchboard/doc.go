// Package switchboard owns nftrtpproxy's switchboards and sessions.
//
// A switchboard (iptrtpproxy's term) joins two gates, gate-a and gate-b,
// each an address and a port range on one side of the router. A session is
// one media stream across a switchboard: an RTP/RTCP port pair on each gate
// and the two peers. Manager implements iptrtpproxy's operations (alloc,
// update, adjust-timeout, delete, find) plus list and show, keeps the ports
// and timers (ringing expiry, learning windows), learns NAT'd peers from the
// kernel's new-flow events, and records sessions in a journal under the
// state directory so that a restart rebuilds them and repairs the kernel.
//
// It talks to the kernel only through relay.Dataplane. Every request is one
// kernel transaction; a failed request leaves kernel and sessions as they
// were.
//
// Its configuration is its part of the daemon's TOML file (state-dir,
// [defaults], [[switchboard]]; the daemon's wiring and the other tables are
// internal/daemonconfig's), read through raw structs into validated types;
// unknown keys, duplicate names and overlapping port ranges are errors.
package switchboard
