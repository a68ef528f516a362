package sdp

import "strings"

// attribute parses the a= lines the package cares about (RFC 8866 §5.13);
// all others are kept untouched.
func (p *parser) attribute(ln line) error {
	v := p.text(span{ln.start + 2, ln.end})
	name, _, hasValue := strings.Cut(v, ":")
	if !hasValue {
		name = strings.TrimRight(name, " \t\r")
	}
	if d, ok := parseDirection(name); ok {
		p.direction(d)
		return nil
	}
	switch {
	case isICE(name):
		p.ice(ln)
	case name == "rtcp-mux" && p.media != nil:
		p.media.RTCPMux = true
	case name == "rtcp" && p.media != nil:
		if !hasValue {
			return p.errorf("invalid a=rtcp port %q", "")
		}
		return p.rtcp(ln.start+2+len("rtcp:"), ln.end)
	}
	return nil
}

// rtcp parses "a=rtcp:<port> [<nettype> <addrtype> <connection-address>]"
// (RFC 3605 §2.1) from raw[start:end], the text after the colon.
func (p *parser) rtcp(start, end int) error {
	if p.media.RTCP != nil {
		return p.errorf("duplicate a=rtcp attribute")
	}
	f := p.fields(start, end)
	if len(f) == 0 {
		return p.errorf("invalid a=rtcp port %q", "")
	}
	port, ok := parseUint16(p.text(f[0]))
	if !ok {
		return p.errorf("invalid a=rtcp port %q", p.text(f[0]))
	}
	r := &RTCP{Port: port, port: f[0]}
	switch len(f) {
	case 1:
	case 4:
		a, err := p.address(f[2], f[3], "a=rtcp address")
		if err != nil {
			return err
		}
		r.NetType, r.AddrType, r.Addr = p.text(f[1]), p.text(f[2]), a
		r.addr = span{f[1].start, f[3].end}
	default:
		return p.errorf("invalid a=rtcp attribute %q", p.text(span{start, end}))
	}
	p.media.RTCP = r
	return nil
}

// direction records a direction attribute at the current level; the last
// one at a level wins.
func (p *parser) direction(d Direction) {
	if p.media == nil {
		p.s.Direction = d
		return
	}
	p.media.Direction, p.media.hasDir = d, true
}

// ice records an ICE attribute line, ending included, for removal.
func (p *parser) ice(ln line) {
	p.s.ice = append(p.s.ice, span{ln.start, ln.next})
	if p.media == nil {
		p.s.ICE = true
		return
	}
	p.media.ICE = true
}

func parseDirection(name string) (Direction, bool) {
	switch name {
	case "sendrecv":
		return SendRecv, true
	case "sendonly":
		return SendOnly, true
	case "recvonly":
		return RecvOnly, true
	case "inactive":
		return Inactive, true
	}
	return 0, false
}

// isICE reports whether name is one of the ICE attributes of RFC 8839 §5
// (ice-ufrag, ice-pwd, ice-options, ice-lite, ice-mismatch, ice-pacing,
// candidate, end-of-candidates, remote-candidates) that Rewrite removes on
// request.
func isICE(name string) bool {
	switch name {
	case "ice-ufrag", "ice-pwd", "ice-options", "ice-lite", "ice-mismatch",
		"ice-pacing", "candidate", "end-of-candidates", "remote-candidates":
		return true
	}
	return false
}
