// Package ng is nftrtpproxy's front end for rtpengine's "ng" control
// protocol, so that Kamailio's and OpenSIPS's stock rtpengine modules drive
// the relay with no change beyond the socket address.
//
// A request is one UDP datagram "<cookie> <dict>", the dict bencoded (or
// JSON when its first byte is "{", answered in JSON); the reply is
// "<cookie> <dict>". Commands ping, offer, answer, delete, query, list and
// statistics are served with rtpengine's reply keys and the error strings
// Kamailio matches ("No SDP body in message", "Unknown call-id", "Ran out of
// ports", ...). Flags and keys the relay has no use for are accepted and
// ignored. Replies are cached by sender and cookie for a minute: a
// retransmitted request is answered from the cache and never executed
// twice, also while the first copy is still being processed.
//
// Semantics kept from rtpengine: direction=<from-gate> direction=<to-gate>
// names the switchboard (its gates' names) and the side the SDP came from;
// trust-address takes each stream's address from the SDP, otherwise the
// received-from address is used with the SDP's port; media-address
// overrides both; replace=origin also rewrites o=. The relay is not an ICE
// agent, so ICE attributes are always removed. symmetric, asymmetric and
// strict-source are accepted: every gate learns and locks as its
// switchboard's learning settings say.
//
// Bencode comes from github.com/zeebo/bencode (a maintained, reflection
// based codec); only the datagram framing and the reply cache are ours.
package ng
