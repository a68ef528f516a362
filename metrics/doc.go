// Package metrics is what operators watch: Prometheus metrics of the
// relay, and one log line per ended call.
//
// Most figures are read at scrape time by a prometheus.Collector (sessions
// by switchboard and state, free port pairs, the journal's size, packets
// and bytes relayed), so the request path pays nothing for them. The rest
// are counted where they happen: requests by protocol and command (one
// hook per front end, Metrics.Observe), session ends by reason (a session
// end subscription, Metrics.SessionEnded), learning and refused sources
// and journal compactions (switchboard.Observer), and kernel transactions
// and conntrack event losses (a relay.Dataplane wrapper, Metrics.Dataplane).
//
// Packets and bytes relayed come from conntrack's per-flow counters: the
// flows that exist at scrape time (one dump of the relay's flows) plus the
// final counters of every flow the kernel destroyed since the daemon
// started (its conntrack DESTROY events). Flows that ended while the daemon
// was down, and events the kernel dropped (counted in
// nftrtpproxy_conntrack_event_losses_total), are not counted.
//
// All types are safe for concurrent use.
package metrics
