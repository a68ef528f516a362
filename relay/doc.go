// Package relay is nftrtpproxy's kernel edge: it turns media legs into
// nftables map elements and manages the conntrack entries that carry each
// flow after its first packet.
//
// A leg is one direction of one stream: packets that arrive at a gate
// address:port are sent to a peer from the opposite gate's address:port.
// Every leg carries a connection mark (ct mark) that keys its NAT data, lets
// its conntrack entries be flushed and its events be recognised. A session of
// the switchboard package has four legs (RTP and RTCP, both directions).
//
// The table "nftrtpproxy" (family inet) is the only kernel object this
// package creates or changes; it never flushes the ruleset. Per-packet cost
// does not grow with the number of legs because legs are map elements, not
// rules:
//
//	raw  (prerouting, priority raw):   gate address + port range -> ct zone 1 (gate-a) or 2 (gate-b)
//	pre  (nat prerouting, dstnat):     ct mark set from map leg4/leg6 (gate addr . port -> mark)
//	                                   drop new flows to gate ports that have no leg
//	                                   drop new flows from a source other than the locked one
//	                                   drop (and count) new flows of a guarded leg from an IP
//	                                     not in learnfrom4/learnfrom6 (mark . source IP)
//	                                   learning legs: add @learned4/6 { mark : saddr . sport }
//	                                     (a dynamic map: the first writer wins)
//	                                   dnat to map learned4/learned6 at the reverse leg's mark
//	                                     (mark ^ 2: what the other side's gate learned)
//	                                   drop new flows of legs with no peer yet
//	                                   dnat to map dnat4/dnat6 (mark -> peer addr . port)
//	post (nat postrouting, srcnat):    snat to map snat4/snat6 (mark -> opposite gate addr . port)
//
// One conntrack zone per gate side makes each direction an independent
// one-way flow, so a peer that sends first cannot poison the other direction.
//
// The Linux implementation lives in *_linux.go; on other systems Open returns
// an error so that the rest of the program builds and its tests run anywhere.
// Use relaytest.Memory as an in-memory Dataplane in tests that do not claim
// kernel behaviour.
package relay
