package lrkproxy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Command letters (lrkproxy.c: lrkp_test, lrkp_get_config,
// lrkp_set_conntrack_rule and, from Kamailio 5.7, lrkp_remove_conntrack_rule).
const (
	CmdPing   = 'P'
	CmdConfig = 'G'
	CmdSet    = 'S'
	CmdDelete = 'D'
)

// maxDatagram bounds a request. The module's own buffers hold 256 bytes,
// so anything longer did not come from it.
const maxDatagram = 4096

// mappingFields is the number of fields after S or D.
const mappingFields = 10

// Request is one datagram "<cookie> <body>". The body starts with the
// command letter; S and D carry the ten fields of a Mapping.
type Request struct {
	Cookie  string
	Command byte
	// Body is everything after "<cookie> ", echoed in S and D replies.
	Body string
	// Mapping holds the fields of S and D.
	Mapping Mapping
}

// Mapping is what S installs and D removes, in the module's words: the
// caller (Src) sends to SNAT and is seen by the callee from Dst; the callee
// (DNAT) sends to Dst and is seen by the caller from SNAT. Dst and SNAT are
// relay addresses, Src and DNAT the peers from the offer's and the answer's
// SDP. An empty field is an invalid Addr or port 0.
type Mapping struct {
	Src, Dst, SNAT, DNAT                 netip.Addr
	SrcPort, DstPort, SNATPort, DNATPort uint16
	// Timeout is the module's conntrack timeout in seconds (always 60).
	Timeout int
	CallID  string
}

// Parse decodes one datagram. It checks syntax only: what the addresses
// mean is the server's business.
func Parse(b []byte) (*Request, error) {
	if len(b) > maxDatagram {
		return nil, fmt.Errorf("%w: %d bytes (at most %d)", errTooLong, len(b), maxDatagram)
	}
	cookie, body, ok := strings.Cut(string(b), " ")
	if !ok || cookie == "" {
		return nil, errNoCookie
	}
	if err := checkToken("cookie", cookie); err != nil {
		return nil, err
	}
	r := &Request{Cookie: cookie, Body: body}
	word, _, _ := strings.Cut(body, " ")
	if len(word) != 1 {
		return r, fmt.Errorf("%w %q", errUnknownCommand, word)
	}
	r.Command = word[0]
	switch r.Command {
	case CmdPing, CmdConfig:
		return r, nil
	case CmdSet, CmdDelete:
		m, err := parseMapping(r.Command, body)
		r.Mapping = m
		return r, err
	}
	return r, fmt.Errorf("%w %q", errUnknownCommand, word)
}

// parseMapping reads "S src dst snat dnat sport dport snport dnport timeout
// callid " (the module ends every field with a space, so an empty field
// shows as two spaces and the body ends with one).
func parseMapping(cmd byte, body string) (Mapping, error) {
	var m Mapping
	f := strings.Split(body, " ")[1:]
	if len(f) == mappingFields+1 && f[mappingFields] == "" {
		f = f[:mappingFields]
	}
	if len(f) != mappingFields {
		return m, fmt.Errorf("%c: %w: want %d, got %d", cmd, errFields, mappingFields, len(f))
	}
	names := [...]string{"src_ipv4", "dst_ipv4", "snat_ipv4", "dnat_ipv4"}
	for i, dst := range []*netip.Addr{&m.Src, &m.Dst, &m.SNAT, &m.DNAT} {
		a, err := parseAddr(f[i])
		if err != nil {
			return m, fmt.Errorf("%c: %s: %w", cmd, names[i], err)
		}
		*dst = a
	}
	ports := [...]string{"src_port", "dst_port", "snat_port", "dnat_port"}
	for i, dst := range []*uint16{&m.SrcPort, &m.DstPort, &m.SNATPort, &m.DNATPort} {
		p, err := parsePort(f[4+i])
		if err != nil {
			return m, fmt.Errorf("%c: %s: %w", cmd, ports[i], err)
		}
		*dst = p
	}
	if f[8] != "" {
		t, err := strconv.ParseUint(f[8], 10, 31)
		if err != nil {
			return m, fmt.Errorf("%c: timeout: %w %q", cmd, errSyntax, f[8])
		}
		m.Timeout = int(t)
	}
	if f[9] == "" {
		return m, fmt.Errorf("%c: %w", cmd, errNoCallID)
	}
	if err := checkToken("call-id", f[9]); err != nil {
		return m, fmt.Errorf("%c: %w", cmd, err)
	}
	m.CallID = f[9]
	return m, nil
}

func parseAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%w: address %q", errSyntax, s)
	}
	return a.Unmap(), nil
}

func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, nil
	}
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%w: port %q", errSyntax, s)
	}
	return uint16(p), nil
}

// checkToken rejects control characters (a cookie or Call-ID is one
// printable word).
func checkToken(what, s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] == 0x7f {
			return fmt.Errorf("%w: %s %q has control characters", errSyntax, what, s)
		}
	}
	return nil
}

// Format writes m as the body the module sends for cmd ("S" or "D" and
// ten fields, each followed by a space).
func (m Mapping) Format(cmd byte) string {
	var b strings.Builder
	b.WriteByte(cmd)
	b.WriteByte(' ')
	for _, a := range []netip.Addr{m.Src, m.Dst, m.SNAT, m.DNAT} {
		if a.IsValid() {
			b.WriteString(a.String())
		}
		b.WriteByte(' ')
	}
	for _, p := range []uint16{m.SrcPort, m.DstPort, m.SNATPort, m.DNATPort} {
		if p != 0 {
			b.WriteString(strconv.Itoa(int(p)))
		}
		b.WriteByte(' ')
	}
	b.WriteString(strconv.Itoa(m.Timeout))
	b.WriteByte(' ')
	b.WriteString(m.CallID)
	b.WriteByte(' ')
	return b.String()
}

// NodeConfig is the module's struct lrkp_node_conf (lrkproxy.h): three C
// ints and two char[20], 52 bytes. The module copies the G reply's bytes
// straight into it, so the ints are in the host's byte order (the module
// reaches the relay over loopback, on the same host).
type NodeConfig struct {
	StartPort, EndPort, CurrentPort int32
	InternalIP, ExternalIP          netip.Addr
}

// nodeConfigSize is sizeof(struct lrkp_node_conf).
const nodeConfigSize = 3*4 + 2*ipField

// ipField is the size of the struct's address strings, NUL included.
const ipField = 20

// MarshalBinary encodes c as the module's struct.
func (c NodeConfig) MarshalBinary() ([]byte, error) {
	b := make([]byte, nodeConfigSize)
	binary.NativeEndian.PutUint32(b[0:], uint32(c.StartPort))
	binary.NativeEndian.PutUint32(b[4:], uint32(c.EndPort))
	binary.NativeEndian.PutUint32(b[8:], uint32(c.CurrentPort))
	for i, a := range []netip.Addr{c.InternalIP, c.ExternalIP} {
		s := a.String()
		if !a.IsValid() || len(s) >= ipField {
			return nil, fmt.Errorf("%w: address %q does not fit the module's %d-byte field", errSyntax, s, ipField)
		}
		copy(b[12+i*ipField:], s)
	}
	return b, nil
}

// UnmarshalBinary decodes the module's struct (the module's side, for
// tests and tools).
func (c *NodeConfig) UnmarshalBinary(b []byte) error {
	if len(b) != nodeConfigSize {
		return fmt.Errorf("%w: node config of %d bytes, want %d", errSyntax, len(b), nodeConfigSize)
	}
	c.StartPort = int32(binary.NativeEndian.Uint32(b[0:]))
	c.EndPort = int32(binary.NativeEndian.Uint32(b[4:]))
	c.CurrentPort = int32(binary.NativeEndian.Uint32(b[8:]))
	for i, dst := range []*netip.Addr{&c.InternalIP, &c.ExternalIP} {
		field := b[12+i*ipField : 12+(i+1)*ipField]
		s, _, _ := strings.Cut(string(field), "\x00")
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("%w: address %q", errSyntax, s)
		}
		*dst = a
	}
	return nil
}
