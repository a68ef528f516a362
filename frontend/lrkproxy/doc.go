// Package lrkproxy is nftrtpproxy's front end for the control protocol of
// Kamailio's stock lrkproxy module, so that a Kamailio configured for an
// LRKProxy relay drives nftrtpproxy with no change but the socket address
// (modparam("lrkproxy", "lrkproxy_sock", "udp:127.0.0.1:22333")).
//
// A request is one UDP datagram "<cookie> <body>"; the module matches a
// reply by its cookie and its exact length:
//
//	P                       → "<cookie> P PONG"
//	G                       → "<cookie> G " + struct lrkp_node_conf (52 bytes:
//	                          start_port, end_port, current_port as host-order
//	                          C ints, internal_ip and external_ip as char[20])
//	S <ten fields>          → "<cookie> " + body + "OK"
//	D <ten fields>          → "<cookie> " + body + "OK"
//
// The ten fields are src_ipv4 dst_ipv4 snat_ipv4 dnat_ipv4 src_port
// dst_port snat_port dnat_port timeout callid, each followed by a space
// (an empty field leaves two spaces). The module, not the relay, picks the
// ports: it counts through G's range itself (4 ports per call: the offer is
// rewritten to dst_port P, the answer to snat_port P+2, each on the address
// the flags of lrkproxy_manage name: "ei" internal, "ie" external), and
// sends S once it has the answer. So S
// allocates exactly those ports (switchboard.Manager.AllocPorts). The
// caller (src) sends to snat, the callee (dnat) to dst; which of the two
// relay addresses is gate-a or gate-b of the switchboard says on which gate
// each peer is, and the gates learn the peers' real sources as every
// session does: the protocol carries no SIP source, so a gate that learns
// only signalled addresses takes the src and dnat addresses of S. The timeout field only serves the take-over rule below:
// the switchboard's media timeout ends calls whose media stopped.
//
// G describes the switchboard [control] default-switchboard names: its gate
// named "internal" (else gate-b) as internal_ip, the other as external_ip,
// the ports both gates have as the range, and current_port after the
// newest call at a free step, so a restarted Kamailio does not start over
// the ports of running calls.
//
// A call is one session in the call layer's table (package calls, SetPair
// and DeletePair), which labels it with its Call-ID so that it survives
// restarts (sessions labelled lrkproxy-call-id by earlier versions too);
// this package keeps no call table, only the module's layout. S again with the same ports updates the peers;
// S with new ports (Kamailio 5.6 takes new ones for a re-INVITE) moves the
// call and ends the old session. D (sent by Kamailio 5.7 and later on BYE
// and CANCEL) ends the call's session; Kamailio 5.6's module has no D at
// all, so with it a call ends by the switchboard's media timeout unless the
// configuration sends D itself (examples/kamailio/lrkproxy.cfg does, with
// corex's send_data). The module's counter wraps without looking at what
// is in use (and Kamailio's processes share it without a lock): a pair
// still held by an earlier call is taken over when that call has no media
// and was last signalled longer ago than S's timeout field, and refused
// (answered "ER") otherwise.
//
// One call through Kamailio 5.6.3 (examples/kamailio/lrkproxy.cfg,
// integration test TestKamailioLrkproxyModuleCallWithHold), each Kamailio
// process starting with P and G, the G reply's 52 bytes shown decoded (S
// and D end in a space after the Call-ID, not shown):
//
//	26307_0 P                         → 26307_0 P PONG
//	26307_1 G                         → 26307_1 G {30000 30996 30000 "10.0.0.1" "192.0.2.1"}
//	26306_2 S 192.0.2.10 10.0.0.1 192.0.2.1 10.0.0.10 6000 30000 30002 6000 60 1-26315@192.0.2.10
//	                                  → the same and "OK"
//	(hold and unhold re-INVITEs: S again on 30004/30006, then 30008/30010)
//	end-1-26315@192.0.2.10 D         60 1-26315@192.0.2.10
//	                                  → the same and "OK" (sent by the configuration on BYE)
//
// Replies are cached by sender and cookie for a minute, so a resent
// request is answered without being executed twice. Failures of S and D
// are answered at the right length with "ER" instead of "OK" (the module
// only logs those two bytes; any other length would stall it through all
// its retransmissions) and logged here.
package lrkproxy
