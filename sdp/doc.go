// Package sdp parses Session Description Protocol bodies as SIP devices
// really send them and rewrites their media addresses with the smallest
// possible change, so that a relay can put itself in the media path.
//
// The line syntax is that of RFC 8866 §5 (which obsoletes RFC 4566): one
// "<type>=<value>" per line, a session section followed by media sections
// that each start with an m= line. RTCP ports follow RFC 3605 (a=rtcp) and
// RFC 5761 (a=rtcp-mux); ICE attributes are those of RFC 8839.
//
// The package never re-serialises a model of the SDP. [Parse] records the
// byte offsets of the few tokens a relay must change (m= ports, c= and o=
// addresses, a=rtcp, ICE lines), and [Session.Rewrite] splices new text into
// the original bytes. Every other byte, including each line's own ending
// (CRLF or LF), unknown lines, attribute order and trailing blank lines,
// stays where the device put it.
//
// Parsing is lenient where devices are harmlessly sloppy (unknown line types,
// missing s= or t=, trailing whitespace, blank lines) and strict about what
// must be rewritten: an invalid m= port, c= address or a=rtcp attribute is
// refused with a [*ParseError] naming the line.
//
// The package does no I/O and keeps no state; a parsed [Session] is never
// modified by this package and is safe for concurrent use.
package sdp
