package ng

import (
	"context"
	"net/netip"
	"time"
)

// Backend executes the commands the server has decoded and checked. The
// server calls it from several goroutines at once, so implementations must
// be safe for concurrent use. A request is never executed twice for one
// cookie: retransmissions are answered from the server's reply cache.
//
// Errors that wrap ErrUnknownCall, ErrInvalidSDP or ErrNoPorts are replied
// with rtpengine's error-reason; others with their message.
type Backend interface {
	// Offer allocates or updates the media of the call leg r.FromTag
	// offers and returns r.SDP rewritten for the other party. The server
	// has checked that r has an SDP, a call-id and a from-tag.
	Offer(ctx context.Context, r *Request) (sdp []byte, err error)
	// Answer applies r.SDP, the answer of the party r.ToTag to the offer
	// of r.FromTag, and returns it rewritten. The server has checked that
	// r has an SDP, a call-id, a from-tag and a to-tag.
	Answer(ctx context.Context, r *Request) (sdp []byte, err error)
	// Delete releases the media of the call (of one branch when
	// r.ViaBranch names one). A non-empty warning is replied with "ok".
	// An unknown call may be reported either as a warning or as an error
	// wrapping ErrUnknownCall.
	Delete(ctx context.Context, r *Request) (warning string, err error)
	// Query returns the counters of the call r.CallID.
	Query(ctx context.Context, r *Request) (*CallStats, error)
	// List returns at most limit (> 0) call-ids.
	List(ctx context.Context, limit int) ([]string, error)
	// Statistics returns the relay's totals.
	Statistics(ctx context.Context) (*Totals, error)
}

// CallStats is what a query reports about one call, in rtpengine's terms:
// the call's parties by SIP tag, their media (m= lines), and the streams
// (RTP and RTCP) of each. The server sums the streams into the reply's
// RTP and RTCP totals.
type CallStats struct {
	Created    time.Time // when the relay first saw the call
	LastSignal time.Time // the last offer or answer
	Tags       []TagStats
}

// TagStats is one party of a call.
type TagStats struct {
	Tag            string // the party's SIP tag; "" for one not yet known
	Label          string // the label the offer or answer gave it, if any
	Created        time.Time
	InDialogueWith string // the other party's tag, if known
	Medias         []MediaStats
}

// MediaStats is one m= line of a party's SDP.
type MediaStats struct {
	Index    int    // 1 for the first m= line
	Type     string // "audio", "video", ...; "" if unknown
	Protocol string // "RTP/AVP", ...; "" if unknown
	Streams  []StreamStats
}

// StreamStats is one packet stream of a media: usually one for RTP and one
// for RTCP. Counters count what the party sent.
type StreamStats struct {
	RTCP       bool           // counted in the RTCP totals, else in RTP
	LocalPort  uint16         // the relay's port; 0 if none
	Endpoint   netip.AddrPort // where the party's packets come from; zero if unknown
	Advertised netip.AddrPort // the address and port in the party's SDP
	LastPacket time.Time      // zero if none yet
	Counters
}

// Counters count packets, their bytes and the packets dropped as errors.
type Counters struct {
	Packets, Bytes, Errors uint64
}

// Totals are the relay-wide figures of the statistics command.
type Totals struct {
	Sessions       int           // calls now (sessionsown, sessionstotal)
	Managed        uint64        // calls handled since start (managedsessions)
	Uptime         time.Duration // since start
	PacketRate     uint64        // packets per second relayed now
	ByteRate       uint64        // bytes per second relayed now
	ErrorRate      uint64        // packets per second dropped now
	RelayedPackets uint64        // since start
	RelayedErrors  uint64        // packets dropped since start
}
