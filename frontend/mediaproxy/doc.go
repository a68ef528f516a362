// Package mediaproxy is nftrtpproxy's front end for Kamailio's stock
// mediaproxy module: it answers on the unix stream socket where the module
// expects AG Projects' MediaProxy dispatcher
// (modparam("mediaproxy", "mediaproxy_socket", ...)), for both
// use_media_proxy()/end_media_session() and the dialog-driven
// engage_media_proxy().
//
// The module keeps one connection per Kamailio process and writes a
// command, "name: value" lines and an empty line, each ending in CRLF; it
// reads one reply line ending in CRLF:
//
//	update                         → "<relay address> <port> <port> ..."
//	type: request|reply
//	dialog_id: <h_entry:h_id>      (engage_media_proxy only)
//	call_id, cseq, from_uri, to_uri, from_tag, to_tag, user_agent,
//	signaling_ip, media_relay
//	media: <type>:<ip>:<port>:<direction>:ice=yes|no,...   (SDP only)
//
//	remove                         → "removed"
//	call_id, from_tag, to_tag
//
// An update names one port per listed stream (0 for a rejected one) and the
// address the SDP's recipient must send to; the module writes them into
// the SDP. Errors are answered "error" (the module then leaves the message
// alone). Headers with empty values are absent, as for the reference
// dispatcher.
//
// Semantics, after AG Projects' media relay: a call is keyed by its Call-ID
// and the From tag of the message that created it (the caller's); later
// messages find it by their From or To tag. A request from the caller or a
// reply to the callee's request carries the caller's SDP, the others the
// callee's. Each stream (by its index in the media list) is one session of
// the switchboard; the SDP's sender is on the gate facing it and its
// recipient is given the opposite gate's address and port. Which gate faces
// the caller is decided when the call is created, from signaling_ip: the
// switchboard with a gate at the local address the kernel would send from
// to reach it (the default-switchboard first) is used, with that gate
// facing the SDP's sender. When no gate is on that route, the
// default-switchboard is used with the caller on gate-a ("external" in the
// examples): requests come from the caller side. media_relay, cseq,
// user_agent and the URIs are accepted and not used.
//
// Streams start ringing and become active once both sides have sent SDP
// (or on a 200 OK without SDP); port 0 ends a stream, a stream missing from
// a later SDP ends too, a=sendonly, a=inactive or 0.0.0.0 mark it held (the
// media timeout spares it). remove ends every stream of the call. The gates
// learn the peers' real sources as for every session. The front end keeps
// no call table: it decodes a request, hands its streams to the call
// layer (package calls, ListUpdate and ListRemove) and encodes the
// placement. The call layer carries the call in session labels (those of
// versions that labelled them mediaproxy-* too), so its Restore rebuilds
// the calls after a restart.
//
// One call through Kamailio 5.6.3 with use_media_proxy()
// (examples/kamailio/mediaproxy.cfg, integration test
// TestKamailioMediaproxyModuleCallWithHold); every line ends in CRLF:
//
//	update                                   (the INVITE)
//	type: request
//	dialog_id:
//	call_id: 1-26391@192.0.2.10
//	cseq: 1
//	from_uri: alice@192.0.2.10:5060
//	to_uri: bob@10.0.0.10:5060
//	from_tag: 26391SIPpTag001
//	to_tag:
//	user_agent: unknown agent
//	signaling_ip: 192.0.2.10
//	media_relay:
//	media: audio:192.0.2.10:6000:sendrecv:ice=no
//	                                         → 10.0.0.1 30000
//	update, type: reply, to_tag: 26390SIPpTag011, signaling_ip: 10.0.0.10,
//	media: audio:10.0.0.10:6000:sendrecv:ice=no   (the 200 OK)
//	                                         → 192.0.2.1 30000
//	(hold: cseq 2, the caller's sendonly → 10.0.0.1 30000, the callee's
//	recvonly → 192.0.2.1 30000; unhold: cseq 3, the same ports)
//	remove
//	call_id: 1-26391@192.0.2.10
//	from_tag: 26391SIPpTag001
//	to_tag: 26390SIPpTag011                  → removed
//
// engage_media_proxy() sends the same with dialog_id "h_entry:h_id" (e.g.
// "86:8150"), and remove when the dialog ends.
//
// The module does not retransmit (a stream socket), so there is no reply
// cache.
package mediaproxy
