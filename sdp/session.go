package sdp

import (
	"net/netip"
	"strconv"
)

// Session is a parsed SDP body. Its exported fields describe the body;
// editing them does not change what [Session.Rewrite] produces, which works
// from the original bytes. A Session is never modified after [Parse] returns
// and is safe for concurrent use.
type Session struct {
	// Origin is the o= line (RFC 8866 §5.2), or nil if the body has none.
	Origin *Origin
	// Connection is the session-level c= line (RFC 8866 §5.7), or nil.
	Connection *Connection
	// Direction is the session-level direction attribute, SendRecv if none.
	Direction Direction
	// ICE reports whether ICE attributes appear at session level.
	ICE bool
	// Media holds one entry per m= line, in order.
	Media []Media

	raw string // the body as parsed
	eol string // first line ending seen, for lines added after an unterminated last line
	ice []span // whole ICE lines (ending included), at both levels
}

// Origin is the o= line: "o=<username> <sess-id> <sess-version> <nettype>
// <addrtype> <unicast-address>" (RFC 8866 §5.2).
type Origin struct {
	Username       string // may contain spaces if the device put them there
	SessionID      string
	SessionVersion string
	NetType        string // "IN"
	AddrType       string // "IP4" or "IP6"
	Address        string // IP literal or host name, as written

	addr span // from NetType to the end of Address
}

// Connection is a c= line: "c=<nettype> <addrtype> <connection-address>"
// (RFC 8866 §5.7). A multicast "/ttl/count" suffix is not kept in Addr.
type Connection struct {
	NetType  string     // "IN"
	AddrType string     // "IP4" or "IP6", consistent with Addr
	Addr     netip.Addr // never has a zone

	addr span // from NetType to the end of the address token
}

// OnHold reports whether the address is the RFC 2543 hold address 0.0.0.0
// or its IPv6 counterpart ::.
func (c *Connection) OnHold() bool { return c != nil && c.Addr.IsUnspecified() }

// RTCP is an a=rtcp attribute: "a=rtcp:<port> [<nettype> <addrtype>
// <connection-address>]" (RFC 3605 §2.1).
type RTCP struct {
	Port     int
	NetType  string     // empty when the attribute has no address
	AddrType string     // empty when the attribute has no address
	Addr     netip.Addr // invalid when the attribute has no address

	port span // the port token
	addr span // from NetType to the end of the address; empty if none
}

// Media is one media description, from its m= line to the next m= line or
// the end of the body: "m=<media> <port>[/<number of ports>] <proto>
// <fmt> ..." (RFC 8866 §5.14).
type Media struct {
	Type      string   // "audio", "video", "image", "application", ...
	Port      int      // 0 means the stream is rejected or disabled
	PortCount int      // the "/2" of "49170/2"; 1 when absent
	Proto     string   // "RTP/AVP", "RTP/SAVP", "udptl", ...
	Formats   []string // payload types or format names, as written

	// Connection is the effective c= line: the media-level one if the
	// section has it, else the session-level one; nil if neither exists.
	// It may be shared with Session.Connection and other Media.
	Connection *Connection
	// RTCP is the a=rtcp attribute, or nil if the section has none.
	RTCP *RTCP
	// RTCPMux reports an a=rtcp-mux attribute (RFC 5761 §5.1.1).
	RTCPMux bool
	// Direction is the effective direction: media-level attribute, else
	// session-level, else SendRecv.
	Direction Direction
	// ICE reports whether ICE attributes apply to the stream, at media or
	// session level.
	ICE bool

	ownConn bool  // Connection comes from a c= line in this section
	hasDir  bool  // a direction attribute appears in this section
	port    span  // the port token without any "/count"
	ins     point // where a media-level c= goes: after m= and any i= lines
	end     point // after the last non-blank line of the section
}

// Rejected reports whether the stream is rejected or disabled (port 0,
// RFC 3264 §6).
func (m *Media) Rejected() bool { return m.Port == 0 }

// OnHold reports whether the stream is put on hold, either the RFC 2543
// way (a c= hold address) or the RFC 3264 §8.4 way (sendonly or inactive).
func (m *Media) OnHold() bool {
	return m.Connection.OnHold() || m.Direction == SendOnly || m.Direction == Inactive
}

// Direction is the media direction attribute of RFC 8866 §6.7.
type Direction uint8

// The directions; the zero value is SendRecv, the default.
const (
	SendRecv Direction = iota
	SendOnly
	RecvOnly
	Inactive
)

// String returns the attribute name, e.g. "sendonly".
func (d Direction) String() string {
	switch d {
	case SendRecv:
		return "sendrecv"
	case SendOnly:
		return "sendonly"
	case RecvOnly:
		return "recvonly"
	case Inactive:
		return "inactive"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// span is a byte range [start, end) of Session.raw.
type span struct{ start, end int }

// point is a position between lines where a line may be inserted, with the
// ending of the line before it ("" if that line is the unterminated last one).
type point struct {
	at  int
	eol string
}
