// Package ng serves rtpengine's "ng" control protocol over UDP, so that
// Kamailio's and OpenSIPS's stock rtpengine modules drive the relay with no
// change beyond the relay's address. It is a thin adapter: it decodes a
// request, checks that the command has the keys it needs, calls a Backend,
// and encodes the reply. It knows nothing of switchboards or the kernel.
//
// # Protocol
//
// A request is one datagram "<cookie> <dictionary>" and its reply
// "<cookie> <dictionary>" with the same cookie. The dictionary is bencoded,
// or JSON when its first byte is '{', and then the reply is JSON too. Keys
// come in any order; values are byte strings, integers, lists and
// dictionaries. The key "command" selects ping, offer, answer, delete,
// query, list or statistics; every reply has "result": "ok", "pong" (for
// ping) or "error" with an "error-reason". A Kamailio 5.6 offer reads
//
//	d8:supportsl10:load limite3:sdp...3:ICE6:remove9:directionl8:external8:internale
//	 5:flagsl13:trust-addresse7:replacel6:origin18:session-connectione
//	 7:call-id...13:received-froml3:IP410:192.0.2.10e8:from-tag...7:command5:offere
//
// Kamailio 6 may instead pass its flags as one string, "rtpp-flags":
// "replace-origin ICE=remove direction=external direction=internal
// trust-address", which Decode parses into the same fields.
//
// # What is kept from rtpengine
//
//   - The error-reason strings Kamailio logs or acts on: "No SDP body in
//     message", "No call-id in message", "No from-tag in message", "No
//     to-tag in message" (checked here, in rtpengine's order, before the
//     backend is called), "Unknown call-id", "Failed to parse SDP", "Ran
//     out of ports" (on which Kamailio tries its next relay), "Unrecognized
//     command". A Backend wraps ErrUnknownCall, ErrInvalidSDP or
//     ErrNoPorts to get them; failure is the one place that words them.
//   - A delete of an unknown call is "ok" with the warning "Call-ID not
//     found or tags didn't match", an error only with the flag fatal.
//   - The reply keys: "sdp"; for query "created", "last signal", "tags" →
//     tag → "medias" → "streams" → "stats" {packets, bytes, errors}, and
//     "totals" {RTP, RTCP}; for list "calls" (32 at most by default); for
//     statistics "statistics" → "currentstatistics" and "totalstatistics".
//   - Retransmissions. Kamailio resends a request with the same cookie
//     when no reply came within a second, up to five times. Replies are
//     kept by sender and cookie (Options.CacheTTL, a minute): a copy gets
//     the first reply and the command is never executed twice. A copy that
//     arrives while the first is still processed is parked and answered
//     when it completes.
//   - Leniency: keys and flags are matched in rtpengine's spellings
//     ("trust address", "trust-address"); keys and flags the relay has no
//     use for are accepted, logged at debug level and ignored.
//
// What is not kept: the other commands (recording, DTMF, media blocking,
// play media, ...) are refused as unrecognised; statistics report only the
// figures the backend has; there is no "load limit" result.
//
// # Bencode
//
// Replies are plain tagged structs shared with encoding/json. On the hot
// path (every request, and the replies of offer, answer, delete, query,
// list and errors) bencode is read and written by hand, in bencode.go and
// wire.go: github.com/zeebo/bencode, a small maintained codec with
// encoding/json's API, works through reflection, re-reads struct tags and
// formats every value with fmt on each call, which cost an ng call more
// CPU and allocations than its kernel transaction. The hand-written parts
// are held to the library's exact bytes and values by fuzz tests
// (FuzzReplyAppenders, FuzzParseBencode); the library still encodes
// requests (Request.Encode, test clients) and the statistics reply.
// Before decoding, the datagram is walked once to check that no string
// claims more bytes than the datagram holds and that nesting stays
// shallow.
//
// # Concurrency
//
// A Server's workers each read a datagram and answer it themselves; it
// runs up to Options.Concurrency requests at once, and the Backend must be
// safe for concurrent use. The daemon gives each worker a socket of its
// own on the ng address (SO_REUSEPORT): workers sharing a socket pass its
// read lock along, and each pass wakes a goroutine on another thread,
// which cost an idle server more CPU per request than a ping's whole work.
// The kernel keeps each client address and port on one socket, so a
// request that waits (the engine orders kernel work) delays only the
// clients that share its socket; Kamailio's processes each have their own
// port, and 16 sockets spread them.
package ng
