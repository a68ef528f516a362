package ng

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The reply dictionaries, with rtpengine's keys (docs/ng_control_protocol.md
// in sipwise/rtpengine). Kamailio's rtpengine module reads "result",
// "error-reason", "sdp", and from query and delete replies "totals",
// "created", "tags" → "label" → "medias" → "streams" and "SSRC".

// result starts every reply: "ok", "pong" or "error".
type result struct {
	Result      string `bencode:"result" json:"result"`
	ErrorReason string `bencode:"error-reason,omitempty" json:"error-reason,omitempty"`
	Warning     string `bencode:"warning,omitempty" json:"warning,omitempty"`
}

var pong = result{Result: "pong"}

// The replies below carry data, so their result is always "ok". (They do
// not embed result: the bencode codec skips embedded unexported structs.)

// sdpReply answers offer and answer.
type sdpReply struct {
	Result string `bencode:"result" json:"result"`
	SDP    string `bencode:"sdp" json:"sdp"`
}

// listReply answers list.
type listReply struct {
	Result string   `bencode:"result" json:"result"`
	Calls  []string `bencode:"calls" json:"calls"`
}

// queryReply answers query, and delete without the flag fast.
type queryReply struct {
	Result     string              `bencode:"result" json:"result"`
	Warning    string              `bencode:"warning,omitempty" json:"warning,omitempty"`
	Created    int64               `bencode:"created" json:"created"`
	LastSignal int64               `bencode:"last signal" json:"last signal"`
	Tags       map[string]tagReply `bencode:"tags" json:"tags"`
	Totals     struct {
		RTP  counters `bencode:"RTP" json:"RTP"`
		RTCP counters `bencode:"RTCP" json:"RTCP"`
	} `bencode:"totals" json:"totals"`
}

type tagReply struct {
	Tag            string       `bencode:"tag" json:"tag"`
	Label          string       `bencode:"label,omitempty" json:"label,omitempty"`
	Created        int64        `bencode:"created" json:"created"`
	InDialogueWith string       `bencode:"in dialogue with,omitempty" json:"in dialogue with,omitempty"`
	Medias         []mediaReply `bencode:"medias" json:"medias"`
}

type mediaReply struct {
	Index    int           `bencode:"index" json:"index"`
	Type     string        `bencode:"type,omitempty" json:"type,omitempty"`
	Protocol string        `bencode:"protocol,omitempty" json:"protocol,omitempty"`
	Streams  []streamReply `bencode:"streams" json:"streams"`
	Flags    []string      `bencode:"flags" json:"flags"`
}

type streamReply struct {
	LocalPort  uint16         `bencode:"local port,omitempty" json:"local port,omitempty"`
	Endpoint   *endpointReply `bencode:"endpoint,omitempty" json:"endpoint,omitempty"`
	Advertised *endpointReply `bencode:"advertised endpoint,omitempty" json:"advertised endpoint,omitempty"`
	LastPacket int64          `bencode:"last packet" json:"last packet"`
	Flags      []string       `bencode:"flags" json:"flags"`
	Stats      counters       `bencode:"stats" json:"stats"`
}

type endpointReply struct {
	Family  string `bencode:"family" json:"family"` // "IPv4" or "IPv6", as rtpengine
	Address string `bencode:"address" json:"address"`
	Port    uint16 `bencode:"port" json:"port"`
}

type counters struct {
	Packets uint64 `bencode:"packets" json:"packets"`
	Bytes   uint64 `bencode:"bytes" json:"bytes"`
	Errors  uint64 `bencode:"errors" json:"errors"`
}

// statisticsReply answers statistics with the keys of rtpengine's
// "list jsonstats" that the relay can fill.
type statisticsReply struct {
	Result     string `bencode:"result" json:"result"`
	Statistics struct {
		Current struct {
			SessionsOwn     int    `bencode:"sessionsown" json:"sessionsown"`
			SessionsForeign int    `bencode:"sessionsforeign" json:"sessionsforeign"`
			SessionsTotal   int    `bencode:"sessionstotal" json:"sessionstotal"`
			TranscodedMedia int    `bencode:"transcodedmedia" json:"transcodedmedia"`
			PacketRate      uint64 `bencode:"packetrate" json:"packetrate"`
			ByteRate        uint64 `bencode:"byterate" json:"byterate"`
			ErrorRate       uint64 `bencode:"errorrate" json:"errorrate"`
		} `bencode:"currentstatistics" json:"currentstatistics"`
		Total struct {
			Uptime              string `bencode:"uptime" json:"uptime"` // seconds, a string as in rtpengine
			ManagedSessions     uint64 `bencode:"managedsessions" json:"managedsessions"`
			RelayedPackets      uint64 `bencode:"relayedpackets" json:"relayedpackets"`
			RelayedPacketErrors uint64 `bencode:"relayedpacketerrors" json:"relayedpacketerrors"`
		} `bencode:"totalstatistics" json:"totalstatistics"`
	} `bencode:"statistics" json:"statistics"`
}

// newQueryReply lays out st as rtpengine does, summing the streams into
// the RTP and RTCP totals.
func newQueryReply(st *CallStats) *queryReply {
	q := &queryReply{Result: "ok", Created: unix(st.Created), LastSignal: unix(st.LastSignal),
		Tags: make(map[string]tagReply, len(st.Tags))}
	for _, t := range st.Tags {
		tr := q.Tags[t.Tag] // a tag listed twice gets the medias of both
		tr.Tag, tr.Created = t.Tag, unix(t.Created)
		tr.Label = cmpOr(t.Label, tr.Label)
		tr.InDialogueWith = cmpOr(t.InDialogueWith, tr.InDialogueWith)
		if tr.Medias == nil {
			tr.Medias = []mediaReply{}
		}
		for _, m := range t.Medias {
			mr := mediaReply{Index: m.Index, Type: m.Type, Protocol: m.Protocol,
				Streams: make([]streamReply, 0, len(m.Streams)), Flags: []string{}}
			for _, s := range m.Streams {
				tot, kind := &q.Totals.RTP, "RTP"
				if s.RTCP {
					tot, kind = &q.Totals.RTCP, "RTCP"
				}
				tot.add(s.Counters)
				mr.Streams = append(mr.Streams, streamReply{LocalPort: s.LocalPort,
					Endpoint: endpoint(s.Endpoint), Advertised: endpoint(s.Advertised),
					LastPacket: unix(s.LastPacket), Flags: []string{kind}, Stats: counters(s.Counters)})
			}
			tr.Medias = append(tr.Medias, mr)
		}
		q.Tags[t.Tag] = tr
	}
	return q
}

func (c *counters) add(x Counters) {
	c.Packets += x.Packets
	c.Bytes += x.Bytes
	c.Errors += x.Errors
}

func newStatisticsReply(t *Totals) *statisticsReply {
	s := &statisticsReply{Result: "ok"}
	c, tot := &s.Statistics.Current, &s.Statistics.Total
	c.SessionsOwn, c.SessionsTotal = t.Sessions, t.Sessions
	c.PacketRate, c.ByteRate, c.ErrorRate = t.PacketRate, t.ByteRate, t.ErrorRate
	tot.Uptime = strconv.FormatInt(int64(t.Uptime/time.Second), 10)
	tot.ManagedSessions, tot.RelayedPackets, tot.RelayedPacketErrors = t.Managed, t.RelayedPackets, t.RelayedErrors
	return s
}

func endpoint(ap netip.AddrPort) *endpointReply {
	if !ap.IsValid() {
		return nil
	}
	fam := "IPv6"
	if ap.Addr().Unmap().Is4() {
		fam = "IPv4"
	}
	return &endpointReply{Family: fam, Address: ap.Addr().Unmap().String(), Port: ap.Port()}
}

// unix is t in seconds since the epoch; 0 for the zero time.
func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// unknownCallWarning is rtpengine's warning (or, with the flag fatal, its
// error) for a delete that finds nothing.
const unknownCallWarning = "Call-ID not found or tags didn't match"

// failure is the reply to r (nil when it could not be decoded) that failed
// with err: the one place where errors become rtpengine's error-reason
// strings, which Kamailio logs and, for "Ran out of ports", acts on.
func failure(r *Request, err error) result {
	reason := err.Error()
	switch {
	case errors.Is(err, ErrUnknownCall) && r != nil && strings.EqualFold(r.Command, "delete"):
		if !r.HasFlag("fatal") {
			return result{Result: "ok", Warning: unknownCallWarning}
		}
		reason = unknownCallWarning
	case errors.Is(err, ErrNoSDP):
		reason = "No SDP body in message"
	case errors.Is(err, ErrNoCallID):
		reason = "No call-id in message"
	case errors.Is(err, ErrNoFromTag):
		reason = "No from-tag in message"
	case errors.Is(err, ErrNoToTag):
		reason = "No to-tag in message"
	case errors.Is(err, ErrUnknownCall):
		reason = "Unknown call-id"
	case errors.Is(err, ErrInvalidSDP):
		reason = "Failed to parse SDP"
	case errors.Is(err, ErrNoPorts):
		reason = "Ran out of ports"
	case errors.Is(err, ErrSessionLimit):
		reason = "Parallel session limit reached: " + err.Error()
	case errors.Is(err, errUnknownCommand):
		reason = "Unrecognized command"
	case errors.Is(err, errNoCommand):
		reason = `Dictionary contains no key "command"`
	case errors.Is(err, errNotDict):
		reason = "Invalid NG data format"
	case errors.Is(err, errBencode):
		reason = "Could not decode bencode dictionary"
	case errors.Is(err, errJSON):
		reason = "Failed to parse JSON document"
	}
	return result{Result: "error", ErrorReason: reason}
}
