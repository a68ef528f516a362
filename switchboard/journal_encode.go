package switchboard

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Every request writes a journal record, so records are appended to the
// write buffer by hand rather than through json.Marshal, which reflects on
// a Session's 40-odd fields, calls the MarshalJSON and MarshalText of each
// time and address, then re-scans what they return (~4 µs and ~20
// allocations a record). appendRecord writes exactly encoding/json's
// bytes: the same field order, omitempty and omitzero, RFC 3339 times,
// addresses as text, and strings escaped as it escapes them (any string it
// would change goes through it); TestAppendRecordIsEncodingJSON and
// FuzzAppendRecord hold the two together, and load reads either;
// TestAppendRecordKnowsEveryField fails when a field is added to a
// journalled type without being added here.

// appendRecord appends rec as encoding/json would encode it.
func appendRecord(b []byte, rec *record) []byte {
	b = appendJSONString(append(b, `{"op":`...), rec.Op)
	if rec.ID != "" {
		b = appendJSONString(append(b, `,"id":`...), rec.ID)
	}
	if rec.Session != nil {
		b = appendSession(append(b, `,"session":`...), rec.Session)
	}
	if rec.Locks != 0 {
		b = strconv.AppendUint(append(b, `,"locks":`...), uint64(rec.Locks), 10)
	}
	if rec.Gen != 0 {
		b = strconv.AppendUint(append(b, `,"gen":`...), uint64(rec.Gen), 10)
	}
	if rec.Boot != "" {
		b = appendJSONString(append(b, `,"boot":`...), rec.Boot)
	}
	if rec.NetNS != 0 {
		b = strconv.AppendUint(append(b, `,"netns":`...), rec.NetNS, 10)
	}
	if len(rec.Txn) > 0 {
		b = append(b, `,"txn":[`...)
		for i := range rec.Txn {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendRecord(b, &rec.Txn[i])
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendSession(b []byte, s *Session) []byte {
	b = appendJSONString(append(b, `{"id":`...), s.ID)
	b = appendJSONString(append(b, `,"switchboard":`...), s.Switchboard)
	b = strconv.AppendUint(append(b, `,"index":`...), uint64(s.Index), 10)
	b = appendAddrPort(append(b, `,"gate_a":`...), s.GateA)
	b = appendAddrPort(append(b, `,"gate_b":`...), s.GateB)
	b = appendPeer(append(b, `,"a":`...), &s.A)
	b = appendPeer(append(b, `,"b":`...), &s.B)
	b = appendJSONString(append(b, `,"state":`...), string(s.State))
	b = appendTime(append(b, `,"created":`...), s.Created)
	b = appendTime(append(b, `,"updated":`...), s.Updated)
	if !s.Expires.IsZero() {
		b = appendTime(append(b, `,"expires":`...), s.Expires)
	}
	if len(s.Labels) > 0 {
		b = appendLabels(append(b, `,"labels":`...), s.Labels)
	}
	if s.Ended != nil {
		b = append(b, `,"ended":[`...)
		for k, c := range s.Ended {
			if k > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(append(b, `{"packets":`...), c.Packets, 10)
			b = strconv.AppendUint(append(b, `,"bytes":`...), c.Bytes, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendPeer(b []byte, p *Peer) []byte {
	b = appendEndpoint(append(b, `{"signalled":`...), &p.Signalled)
	b = appendEndpoint(append(b, `,"learned":`...), &p.Learned)
	if !p.LearnUntil.IsZero() {
		b = appendTime(append(b, `,"learn_until":`...), p.LearnUntil)
	}
	return append(b, '}')
}

// appendEndpoint writes e's fields, each but the first after a comma.
func appendEndpoint(b []byte, e *Endpoint) []byte {
	b = append(b, '{')
	sep := func() {
		if b[len(b)-1] != '{' {
			b = append(b, ',')
		}
	}
	if e.RTP != (netip.AddrPort{}) {
		b = appendAddrPort(append(b, `"rtp":`...), e.RTP)
	}
	if e.RTCP != (netip.AddrPort{}) {
		sep()
		b = appendAddrPort(append(b, `"rtcp":`...), e.RTCP)
	}
	if e.Hold {
		sep()
		b = append(b, `"hold":true`...)
	}
	if e.Source != (netip.Addr{}) {
		sep()
		b = appendJSONString(append(b, `"source":`...), e.Source.String())
	}
	if e.Strict {
		sep()
		b = append(b, `"strict":true`...)
	}
	return append(b, '}')
}

func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	if !ap.IsValid() {
		return append(b, `""`...)
	}
	if ap.Addr().Zone() != "" { // a zone may hold what JSON escapes
		return appendJSONString(b, ap.String())
	}
	return append(ap.AppendTo(append(b, '"')), '"')
}

// appendTime writes t as time.Time.MarshalJSON does; a year it refuses
// (outside 0-9999) cannot be in a session.
func appendTime(b []byte, t time.Time) []byte {
	return append(t.AppendFormat(append(b, '"'), time.RFC3339Nano), '"')
}

func appendLabels(b []byte, labels map[string]string) []byte {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(append(appendJSONString(b, k), ':'), labels[k])
	}
	return append(b, '}')
}

// appendJSONString quotes s as encoding/json does: strings of printable
// ASCII without what it escapes are copied; any other goes through it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}
