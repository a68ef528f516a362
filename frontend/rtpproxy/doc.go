// Package rtpproxy is the front end for the control protocol of Sippy's
// rtpproxy (protocol version 20040107 and its extensions), so that SIP
// proxies written for rtpproxy — Kamailio's and OpenSIPS's rtpproxy modules —
// drive nftrtpproxy unchanged.
//
// It speaks the protocol on a UDP socket, where each datagram is
// "COOKIE COMMAND" and each reply "COOKIE REPLY\n" (a retransmitted
// cookie is answered from a cache, not run again), or on a unix stream
// socket without cookies, where a command ends at a newline or at the end
// of a read (Kamailio sends one command per connection, without a
// newline); see Listen. It is a thin adapter: it decodes a
// command, calls the call layer (package calls, its per-stream entry
// points) and encodes the result; it keeps no call table and never
// touches the kernel.
//
// # Commands
//
//	V                                        → 20040107
//	VF DATE                                  → 1 or 0: is the extension dated DATE supported
//	U[mods] CALLID ADDR PORT FROMTAG[;N] [TOTAG[;N]] [NOTIFY...]  → PORT ADDR [6]
//	L[mods] CALLID ADDR PORT FROMTAG[;N] [TOTAG[;N]]              → PORT ADDR [6], or 0
//	D[w] CALLID FROMTAG [TOTAG]              → 0
//	Q[v] CALLID FROMTAG [TOTAG [STAT...]]    → TTL PKTS_FROM PKTS_OTHER RELAYED DROPPED
//	I[b]                                     → sessions created/active, streams
//
// An rtpproxy session is one media stream of a call, named by the Call-ID
// and the tag and medianum of the party whose offer created it (the
// creator); it is one switchboard session here. U carries the address of
// the FROMTAG party and L that of the TOTAG party (the answerer); both
// reply with the relay address the other party must send to. The first
// U of a stream allocates a ringing session; the first L (the answer)
// switches it to active. The protocol carries no separate SIP source:
// Kamailio's rtpproxy module sends the SIP message's source as ADDR unless
// its "r" flag trusts the SDP, so a gate that learns only signalled
// addresses learns a NAT'd party from its NAT (with "r", from the SDP's
// address only). The call layer keeps the streams
// in session labels (the creator's TAG;MEDIANUM as its offerer-tag), so
// its Restore rebuilds them after a restart, those of versions that
// labelled them rtpproxy-* too. Which stream the tags of a command name
// (the medianum rules of rtpproxy's find_stream and
// compare_session_tags) stays here.
//
// The bridge modifiers "E" (external) and "I" (internal) of U name the
// network the offer comes from and the one it goes to. They select the
// switchboard whose gates are named "external" and "internal" (the
// default switchboard first, then the others in file order; the modifier
// "6" asks for an IPv6 one); failing that, the default switchboard with
// gate-a external. Without them the offer comes from "external".
//
// Errors are rtpproxy's "E<code>" replies with the codes of its
// rtpp_command_ecodes.h (errors.go lists them). Not supported, as VF
// says: re-packetization (the modifier Z is accepted and ignored),
// timeout notifications (U's notification socket is accepted and
// ignored), and the commands for forking, recording and playback (C, R,
// P, S, N), statistics (G) and deleting everything (X), which answer E0.
package rtpproxy
