package sdp

import (
	"fmt"
	"net/netip"
	"strings"
)

// Parse parses an SDP body. Lines may end in CRLF or LF, and the
// last line may have no ending. The first non-blank line must be "v=0";
// s=, t= and unknown lines are optional and kept as they are. An invalid m=
// port, c= address, o= line or a=rtcp attribute is refused with a
// [*ParseError]. Parse copies b; the caller may reuse it.
func Parse(b []byte) (*Session, error) {
	p := parser{s: &Session{raw: string(b)}}
	p.toks = p.buf[:0]
	if err := p.parse(); err != nil {
		return nil, err
	}
	return p.s, nil
}

// parser holds the state of one Parse call.
type parser struct {
	s      *Session
	lineNo int
	media  *Media // current media section; nil at session level
	afterM bool   // only i= lines since the current m= line
	toks   []span // scratch for fields
	buf    [16]span
}

// line is one line of the body: its content is raw[start:end] and its
// ending raw[end:next].
type line struct{ start, end, next int }

func (p *parser) parse() error {
	raw := p.s.raw
	p.s.Media = make([]Media, 0, strings.Count(raw, "m="))
	seenV := false
	for pos := 0; pos < len(raw); {
		ln := nextLine(raw, pos)
		pos = ln.next
		p.lineNo++
		if p.s.eol == "" {
			p.s.eol = raw[ln.end:ln.next]
		}
		var err error
		if seenV {
			err = p.line(ln)
		} else {
			seenV, err = p.version(ln)
		}
		if err != nil {
			return err
		}
	}
	if !seenV {
		return &ParseError{Line: 1, Msg: "missing v= line"}
	}
	if p.s.eol == "" {
		p.s.eol = "\r\n"
	}
	p.finish()
	return nil
}

// nextLine returns the line starting at pos. Lines end in LF or CRLF; a
// lone CR is content, which keeps line structure stable when lines are
// inserted or removed.
func nextLine(raw string, pos int) line {
	i := strings.IndexByte(raw[pos:], '\n')
	if i < 0 {
		return line{pos, len(raw), len(raw)}
	}
	end := pos + i
	if end > pos && raw[end-1] == '\r' {
		end--
	}
	return line{pos, end, pos + i + 1}
}

// version checks the v= line (RFC 8866 §5.1), skipping leading blank lines.
func (p *parser) version(ln line) (bool, error) {
	c := strings.TrimSpace(p.text(span{ln.start, ln.end}))
	switch {
	case c == "":
		return false, nil
	case !strings.HasPrefix(c, "v="):
		return false, p.errorf("missing v= line")
	case strings.TrimSpace(c[2:]) != "0":
		return false, p.errorf("unsupported version %q", c[2:])
	}
	return true, nil
}

// line parses one line after v=.
func (p *parser) line(ln line) error {
	c := p.text(span{ln.start, ln.end})
	var err error
	if len(c) >= 2 && c[1] == '=' {
		switch c[0] {
		case 'm':
			err = p.mline(ln)
		case 'c':
			err = p.connection(ln)
		case 'o':
			err = p.origin(ln)
		case 'a':
			err = p.attribute(ln)
		case 'i':
			if p.afterM {
				p.media.ins = p.after(ln)
			}
		}
	}
	p.afterM = p.media != nil && strings.HasPrefix(c, "m=") ||
		p.afterM && strings.HasPrefix(c, "i=")
	if p.media != nil && strings.TrimSpace(c) != "" {
		p.media.end = p.after(ln)
	}
	return err
}

// mline starts a media section (RFC 8866 §5.14).
func (p *parser) mline(ln line) error {
	f := p.fields(ln.start+2, ln.end)
	if len(f) < 3 {
		return p.errorf("too few fields in m= line %q", p.text(span{ln.start + 2, ln.end}))
	}
	portStr, countStr, hasCount := strings.Cut(p.text(f[1]), "/")
	port, ok := parseUint16(portStr)
	if !ok {
		return p.errorf("invalid port %q", portStr)
	}
	count := 1
	if hasCount {
		if count, ok = parseUint16(countStr); !ok || count == 0 {
			return p.errorf("invalid port count %q", countStr)
		}
	}
	m := Media{Type: p.text(f[0]), Port: port, PortCount: count, Proto: p.text(f[2])}
	m.port = span{f[1].start, f[1].start + len(portStr)}
	if len(f) > 3 {
		m.Formats = make([]string, len(f)-3)
		for i, t := range f[3:] {
			m.Formats[i] = p.text(t)
		}
	}
	m.ins = p.after(ln)
	p.s.Media = append(p.s.Media, m)
	p.media = &p.s.Media[len(p.s.Media)-1]
	return nil
}

// connection parses a c= line at session or media level (RFC 8866 §5.7).
func (p *parser) connection(ln line) error {
	f := p.fields(ln.start+2, ln.end)
	if len(f) < 3 {
		return p.errorf("too few fields in c= line %q", p.text(span{ln.start + 2, ln.end}))
	}
	a, err := p.address(f[1], f[2], "connection address")
	if err != nil {
		return err
	}
	c := &Connection{NetType: p.text(f[0]), AddrType: p.text(f[1]), Addr: a, addr: span{f[0].start, f[2].end}}
	switch {
	case p.media == nil && p.s.Connection == nil:
		p.s.Connection = c
	case p.media != nil && !p.media.ownConn:
		p.media.Connection, p.media.ownConn = c, true
	default:
		return p.errorf("duplicate c= line")
	}
	return nil
}

// origin parses the session-level o= line (RFC 8866 §5.2). The username is
// everything before the last five fields, for devices that put spaces in it.
func (p *parser) origin(ln line) error {
	if p.media != nil {
		return nil // not an SDP o= line; keep it as an unknown one
	}
	if p.s.Origin != nil {
		return p.errorf("duplicate o= line")
	}
	f := p.fields(ln.start+2, ln.end)
	n := len(f)
	if n < 6 {
		return p.errorf("too few fields in o= line %q", p.text(span{ln.start + 2, ln.end}))
	}
	p.s.Origin = &Origin{
		Username:       p.text(span{f[0].start, f[n-6].end}),
		SessionID:      p.text(f[n-5]),
		SessionVersion: p.text(f[n-4]),
		NetType:        p.text(f[n-3]),
		AddrType:       p.text(f[n-2]),
		Address:        p.text(f[n-1]),
		addr:           span{f[n-3].start, f[n-1].end},
	}
	return nil
}

// finish resolves what media sections inherit from the session level.
func (p *parser) finish() {
	s := p.s
	for i := range s.Media {
		m := &s.Media[i]
		if !m.ownConn {
			m.Connection = s.Connection
		}
		if !m.hasDir {
			m.Direction = s.Direction
		}
		m.ICE = m.ICE || s.ICE
	}
}

// address parses the <addrtype> <connection-address> pair of c= and a=rtcp.
// The address must be an IP literal of the stated family; a multicast
// "/ttl/count" suffix is allowed and not returned.
func (p *parser) address(typ, addr span, what string) (netip.Addr, error) {
	t, tok := p.text(typ), p.text(addr)
	if t != "IP4" && t != "IP6" {
		return netip.Addr{}, p.errorf("unknown address type %q", t)
	}
	host, _, _ := strings.Cut(tok, "/")
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, p.errorf("invalid %s %q", what, tok)
	}
	if (t == "IP4") != a.Is4() {
		return netip.Addr{}, p.errorf("%s %q is not %s", what, tok, t)
	}
	return a, nil
}

// fields splits raw[start:end] at runs of spaces, tabs and stray CRs. The result is
// reused by the next call.
func (p *parser) fields(start, end int) []span {
	raw := p.s.raw
	p.toks = p.toks[:0]
	for i := start; i < end; {
		for i < end && isSpace(raw[i]) {
			i++
		}
		j := i
		for j < end && !isSpace(raw[j]) {
			j++
		}
		if j > i {
			p.toks = append(p.toks, span{i, j})
		}
		i = j
	}
	return p.toks
}

// after returns the insertion point following ln.
func (p *parser) after(ln line) point {
	return point{at: ln.next, eol: p.s.raw[ln.end:ln.next]}
}

func (p *parser) text(sp span) string { return p.s.raw[sp.start:sp.end] }

func (p *parser) errorf(format string, args ...any) error {
	return &ParseError{Line: p.lineNo, Msg: fmt.Sprintf(format, args...)}
}

// parseUint16 parses a port or port count: 1 to 5 decimal digits, at most
// 65535. Unlike strconv.Atoi it refuses signs.
func parseUint16(s string) (int, bool) {
	if len(s) == 0 || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n <= 65535
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }
