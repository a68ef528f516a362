package sdp

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
)

// Rewrite says what [Session.Rewrite] changes. The zero value changes nothing.
type Rewrite struct {
	// Media holds one entry per m= line, by index into Session.Media. It
	// may be shorter than Session.Media; missing entries change nothing.
	Media []MediaRewrite
	// Origin, if valid, replaces the o= line's address ("IN IP4 <addr>" or
	// "IN IP6 <addr>"). The session version is left alone.
	Origin netip.Addr
	// RemoveICE deletes every ICE attribute line (see RFC 8839 §5) at both
	// session and media level.
	RemoveICE bool
}

// MediaRewrite says what to change in one media section. Zero fields
// change nothing.
type MediaRewrite struct {
	// Addr is the new connection address. Its family picks "IN IP4" or
	// "IN IP6", so a stream can be bridged between families.
	Addr netip.Addr
	// Port is the new RTP port, 1 to 65535; 0 keeps the port.
	Port int
	// RTCPPort is the new RTCP port; 0 means Port+1 (or no change if Port
	// is 0 too), but Port itself when the stream had a=rtcp equal to its
	// RTP port together with a=rtcp-mux.
	// A stream without a=rtcp gets one only if RTCPPort is set and is not
	// the RTP port plus one.
	RTCPPort int
}

// Rewrite returns the session's original bytes with the changes of r
// spliced in; every other byte is kept. The rules:
//
//   - Rejected streams (port 0) are passed through untouched.
//   - The m= port is replaced; a "/count" suffix stays.
//   - A media-level c= is rewritten in place. A stream that inherits the
//     session-level c= makes the session c= carry the address of the first
//     such stream to be rewritten; the other inheriting streams get a
//     media-level c= inserted after their m= and i= lines when their new
//     address differs, or when they are not being rewritten (so they keep
//     the original address). A stream with no c= anywhere gets one.
//   - Hold addresses (0.0.0.0, ::) in c= and a=rtcp are kept as written,
//     and so are direction attributes.
//   - a=rtcp gets the RTCP port (see [MediaRewrite.RTCPPort]) and, if it had
//     an address, the new address.
//
// Rewriting the result again with the same r yields the same bytes. A
// spec that would produce invalid SDP (a port out of range, a hold or zoned
// address, more entries than m= lines) is refused with an error and no
// output.
func (s *Session) Rewrite(r Rewrite) ([]byte, error) {
	if err := s.check(r); err != nil {
		return nil, err
	}
	e := editor{eol: s.eol}
	if s.Origin != nil && r.Origin.IsValid() {
		e.replace(s.Origin.addr, connText(r.Origin))
	}
	plan := s.sessionPlan(r)
	if plan.changed {
		e.replace(s.Connection.addr, connText(plan.addr))
	}
	for i := range s.Media {
		s.rewriteMedia(&e, &s.Media[i], r.media(i), plan)
	}
	if r.RemoveICE {
		for _, sp := range s.ice {
			e.replace(sp, "")
		}
	}
	return e.apply(s.raw), nil
}

// media returns the rewrite for media section i, zero if r has none.
func (r *Rewrite) media(i int) MediaRewrite {
	if i < len(r.Media) {
		return r.Media[i]
	}
	return MediaRewrite{}
}

// check refuses rewrites that would produce invalid SDP.
func (s *Session) check(r Rewrite) error {
	if len(r.Media) > len(s.Media) {
		return fmt.Errorf("sdp: rewrite of %d media sections, session has %d", len(r.Media), len(s.Media))
	}
	if err := checkAddr(r.Origin); err != nil {
		return fmt.Errorf("sdp: origin: %w", err)
	}
	for i, mr := range r.Media {
		if err := s.Media[i].check(mr); err != nil {
			return fmt.Errorf("sdp: media %d: %w", i, err)
		}
	}
	return nil
}

// check validates one media rewrite against its section.
func (m *Media) check(mr MediaRewrite) error {
	if err := checkAddr(mr.Addr); err != nil {
		return err
	}
	if mr.Port < 0 || mr.Port > 65535 {
		return fmt.Errorf("invalid port %d", mr.Port)
	}
	if mr.RTCPPort < 0 || mr.RTCPPort > 65535 {
		return fmt.Errorf("invalid rtcp port %d", mr.RTCPPort)
	}
	if p := m.rtcpPort(mr); p > 65535 && m.RTCP != nil {
		return fmt.Errorf("invalid rtcp port %d", p)
	}
	return nil
}

// checkAddr accepts the zero Addr (no change) and unicast or multicast
// literals, but not the hold addresses or addresses with a zone.
func checkAddr(a netip.Addr) error {
	if a.IsValid() && (a.IsUnspecified() || a.Zone() != "") {
		return fmt.Errorf("invalid address %q", a)
	}
	return nil
}

// plan is what happens to the session-level c= line.
type plan struct {
	addr    netip.Addr // its address after the rewrite
	changed bool
}

// sessionPlan gives the session-level c= the new address of the first
// rewritten stream that inherits it, unless it is absent or a hold address.
func (s *Session) sessionPlan(r Rewrite) plan {
	c := s.Connection
	if c == nil || c.OnHold() {
		return plan{}
	}
	for i := range s.Media {
		m := &s.Media[i]
		if a := r.media(i).Addr; !m.ownConn && !m.Rejected() && a.IsValid() {
			return plan{addr: a, changed: a != c.Addr}
		}
	}
	return plan{addr: c.Addr}
}

// rewriteMedia edits one media section.
func (s *Session) rewriteMedia(e *editor, m *Media, mr MediaRewrite, p plan) {
	if m.Rejected() {
		return
	}
	if mr.Port != 0 {
		e.replace(m.port, strconv.Itoa(mr.Port))
	}
	s.rewriteConnection(e, m, mr.Addr, p)
	rewriteRTCP(e, m, mr)
}

// rewriteConnection applies the c= rules of Session.Rewrite to one stream.
func (s *Session) rewriteConnection(e *editor, m *Media, a netip.Addr, p plan) {
	switch {
	case m.ownConn:
		if a.IsValid() && !m.Connection.OnHold() {
			e.replace(m.Connection.addr, connText(a))
		}
	case s.Connection == nil:
		if a.IsValid() {
			e.insert(m.ins, "c="+connText(a))
		}
	case s.Connection.OnHold():
	case !a.IsValid():
		if p.changed {
			e.insert(m.ins, "c="+s.raw[s.Connection.addr.start:s.Connection.addr.end])
		}
	case a != p.addr:
		e.insert(m.ins, "c="+connText(a))
	}
}

// rewriteRTCP rewrites a=rtcp, or adds one for a port that is not RTP+1.
func rewriteRTCP(e *editor, m *Media, mr MediaRewrite) {
	port := m.rtcpPort(mr)
	if m.RTCP == nil {
		if port != 0 && port != m.rtpPort(mr)+1 {
			e.insert(m.end, "a=rtcp:"+strconv.Itoa(port))
		}
		return
	}
	if port != 0 {
		e.replace(m.RTCP.port, strconv.Itoa(port))
	}
	if m.RTCP.Addr.IsValid() && !m.RTCP.Addr.IsUnspecified() && mr.Addr.IsValid() {
		e.replace(m.RTCP.addr, connText(mr.Addr))
	}
}

// rtpPort is the stream's RTP port after the rewrite.
func (m *Media) rtpPort(mr MediaRewrite) int {
	if mr.Port != 0 {
		return mr.Port
	}
	return m.Port
}

// rtcpPort is the RTCP port the rewrite asks for, 0 for no change.
func (m *Media) rtcpPort(mr MediaRewrite) int {
	switch {
	case mr.RTCPPort != 0:
		return mr.RTCPPort
	case mr.Port == 0:
		return 0
	case m.RTCPMux && m.RTCP != nil && m.RTCP.Port == m.Port:
		return mr.Port
	}
	return mr.Port + 1
}

// connText formats "<nettype> <addrtype> <address>" for a.
func connText(a netip.Addr) string {
	if a.Is4() {
		return "IN IP4 " + a.String()
	}
	return "IN IP6 " + a.String()
}

// editor collects splices into the original bytes.
type editor struct {
	eol     string // line ending for lines added after an unterminated last line
	splices []splice
}

// splice replaces raw[start:end] with text; start == end inserts.
type splice struct {
	start, end  int
	text        string
	breakBefore bool // text needs a line break before it unless at a line start
}

func (e *editor) replace(sp span, text string) {
	e.splices = append(e.splices, splice{sp.start, sp.end, text, false})
}

// insert adds a line at pt, ending it like the line before. After an
// unterminated last line it goes after a line break instead.
func (e *editor) insert(pt point, line string) {
	if pt.eol != "" {
		line += pt.eol
	}
	e.splices = append(e.splices, splice{pt.at, pt.at, line, pt.eol == ""})
}

// apply returns raw with the splices applied; insertions at one position
// keep the order they were added in and come before a replacement there.
func (e *editor) apply(raw string) []byte {
	slices.SortStableFunc(e.splices, func(a, b splice) int {
		return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.end, b.end))
	})
	n := len(raw)
	for _, sp := range e.splices {
		n += len(sp.text) + len(e.eol) - (sp.end - sp.start)
	}
	out := make([]byte, 0, n)
	pos := 0
	for _, sp := range e.splices {
		out = append(out, raw[pos:sp.start]...)
		if sp.breakBefore && len(out) > 0 && out[len(out)-1] != '\n' {
			out = append(out, e.eol...)
		}
		out = append(out, sp.text...)
		pos = sp.end
	}
	return append(out, raw[pos:]...)
}
