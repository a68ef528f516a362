package ng

import (
	"slices"
	"strconv"
)

// The replies of every call (offer, answer, delete with statistics) and of
// every failure are bencoded by appenders written for their types, into the
// datagram that carries them. zeebo/bencode, which decodes requests, encodes
// through reflection: it re-reads a struct's tags on every call and writes
// each value with fmt.Fprintf, which made a delete's reply cost more CPU
// than its kernel transaction and ~200 allocations. The appenders produce
// exactly its bytes (BEP 3: keys of a dictionary as sorted raw strings,
// omitempty fields left out, nil pointers left out), which
// TestReplyAppendersMatchTheLibrary and FuzzReplyAppenders check; a reply
// type without one (statistics) is encoded by the library.

// appendReply appends the bencoding of rep and reports whether rep's type
// has an appender.
func appendReply(b []byte, rep any) ([]byte, bool) {
	switch r := rep.(type) {
	case result:
		return appendResult(b, r), true
	case sdpReply:
		return appendSDPReply(b, r), true
	case *queryReply:
		return appendQueryReply(b, r), true
	case listReply:
		return appendListReply(b, r), true
	}
	return b, false
}

// replySize is a guess of rep's size, so that one allocation holds it.
func replySize(rep any) int {
	if r, ok := rep.(sdpReply); ok {
		return len(r.SDP) + 32
	}
	return 512
}

func appendString(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	return append(append(b, ':'), s...)
}

func appendInt(b []byte, n int64) []byte {
	return append(strconv.AppendInt(append(b, 'i'), n, 10), 'e')
}

func appendUint(b []byte, n uint64) []byte {
	return append(strconv.AppendUint(append(b, 'i'), n, 10), 'e')
}

// appendKey appends a dictionary key and its string value.
func appendKey(b []byte, key, value string) []byte {
	return appendString(appendString(b, key), value)
}

func appendStrings(b []byte, l []string) []byte {
	b = append(b, 'l')
	for _, s := range l {
		b = appendString(b, s)
	}
	return append(b, 'e')
}

func appendResult(b []byte, r result) []byte {
	b = append(b, 'd')
	if r.ErrorReason != "" {
		b = appendKey(b, "error-reason", r.ErrorReason)
	}
	b = appendKey(b, "result", r.Result)
	if r.Warning != "" {
		b = appendKey(b, "warning", r.Warning)
	}
	return append(b, 'e')
}

func appendSDPReply(b []byte, r sdpReply) []byte {
	b = appendKey(append(b, 'd'), "result", r.Result)
	return append(appendKey(b, "sdp", r.SDP), 'e')
}

func appendListReply(b []byte, r listReply) []byte {
	b = appendStrings(appendString(append(b, 'd'), "calls"), r.Calls)
	return append(appendKey(b, "result", r.Result), 'e')
}

func appendQueryReply(b []byte, q *queryReply) []byte {
	b = appendInt(appendString(append(b, 'd'), "created"), q.Created)
	b = appendInt(appendString(b, "last signal"), q.LastSignal)
	b = appendKey(b, "result", q.Result)
	b = append(appendString(b, "tags"), 'd')
	tags := make([]string, 0, len(q.Tags))
	for t := range q.Tags {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	for _, t := range tags {
		b = appendTagReply(appendString(b, t), q.Tags[t])
	}
	b = append(b, 'e')
	b = append(appendString(b, "totals"), 'd')
	b = appendCounters(appendString(b, "RTCP"), q.Totals.RTCP)
	b = appendCounters(appendString(b, "RTP"), q.Totals.RTP)
	b = append(b, 'e')
	if q.Warning != "" {
		b = appendKey(b, "warning", q.Warning)
	}
	return append(b, 'e')
}

func appendTagReply(b []byte, t tagReply) []byte {
	b = appendInt(appendString(append(b, 'd'), "created"), t.Created)
	if t.InDialogueWith != "" {
		b = appendKey(b, "in dialogue with", t.InDialogueWith)
	}
	if t.Label != "" {
		b = appendKey(b, "label", t.Label)
	}
	b = append(appendString(b, "medias"), 'l')
	for _, m := range t.Medias {
		b = appendMediaReply(b, m)
	}
	b = append(b, 'e')
	return append(appendKey(b, "tag", t.Tag), 'e')
}

func appendMediaReply(b []byte, m mediaReply) []byte {
	b = appendStrings(appendString(append(b, 'd'), "flags"), m.Flags)
	b = appendInt(appendString(b, "index"), int64(m.Index))
	if m.Protocol != "" {
		b = appendKey(b, "protocol", m.Protocol)
	}
	b = append(appendString(b, "streams"), 'l')
	for _, s := range m.Streams {
		b = appendStreamReply(b, s)
	}
	b = append(b, 'e')
	if m.Type != "" {
		b = appendKey(b, "type", m.Type)
	}
	return append(b, 'e')
}

func appendStreamReply(b []byte, s streamReply) []byte {
	b = append(b, 'd')
	if s.Advertised != nil {
		b = appendEndpoint(appendString(b, "advertised endpoint"), s.Advertised)
	}
	if s.Endpoint != nil {
		b = appendEndpoint(appendString(b, "endpoint"), s.Endpoint)
	}
	b = appendStrings(appendString(b, "flags"), s.Flags)
	b = appendInt(appendString(b, "last packet"), s.LastPacket)
	if s.LocalPort != 0 {
		b = appendUint(appendString(b, "local port"), uint64(s.LocalPort))
	}
	return append(appendCounters(appendString(b, "stats"), s.Stats), 'e')
}

func appendEndpoint(b []byte, e *endpointReply) []byte {
	b = appendKey(append(b, 'd'), "address", e.Address)
	b = appendKey(b, "family", e.Family)
	return append(appendUint(appendString(b, "port"), uint64(e.Port)), 'e')
}

func appendCounters(b []byte, c counters) []byte {
	b = appendUint(appendString(append(b, 'd'), "bytes"), c.Bytes)
	b = appendUint(appendString(b, "errors"), c.Errors)
	return append(appendUint(appendString(b, "packets"), c.Packets), 'e')
}
