package rtpproxy

import (
	"net/netip"
	"strconv"
	"strings"
)

// op is a command, named by its letter ('F' stands for VF).
type op byte

const (
	opVersion op = 'V' // V: the base protocol version
	opFeature op = 'F' // VF DATE: is an extension supported
	opUpdate  op = 'U' // U: offer (create or update a stream)
	opLookup  op = 'L' // L: answer
	opDelete  op = 'D' // D: delete a call's streams
	opQuery   op = 'Q' // Q: a stream's counters
	opInfo    op = 'I' // I: totals
)

// command is one decoded command line (without the UDP cookie).
type command struct {
	op op
	// mods are the modifiers of U and L; flags the raw modifiers of D, Q
	// and I.
	mods  modifiers
	flags string

	callID   string
	from, to tag // to is "" when absent
	// media is where the party of U (FROMTAG) or L (TOTAG) receives RTP.
	media netip.AddrPort
	// notify is U's timeout-notification socket and tag (accepted, unused).
	notify  []string
	feature string   // VF: the extension's date
	stats   []string // Q: counter names
}

// tag is a SIP tag as the protocol sends it: "TAG" or "TAG;MEDIANUM".
type tag string

// name is the SIP tag without the medianum.
func (t tag) name() string {
	if i := strings.LastIndexByte(string(t), ';'); i >= 0 {
		return string(t[:i])
	}
	return string(t)
}

// media is the medianum ("" when absent).
func (t tag) media() string {
	if i := strings.LastIndexByte(string(t), ';'); i >= 0 {
		return string(t[i+1:])
	}
	return ""
}

func (t tag) hasMedia() bool { return strings.IndexByte(string(t), ';') >= 0 }

// modifiers of U and L. Letters are case-insensitive.
type modifiers struct {
	// bridge holds up to two of 'E' (external) and 'I' (internal): the
	// network an offer comes from and the one it goes to.
	bridge     string
	asymmetric bool   // A: accepted; gates always learn the real source
	ipv6       bool   // 6: the address is IPv6
	codecs     string // c<pt,pt,...>: accepted, unused
	// other are the accepted, unused modifiers as sent: S, W, N, Z<ptime>,
	// l<addr>, r<addr>.
	other string
}

// separators split a command's words, as in rtpproxy's rtpp_strsplit.
const separators = " \t\r\n"

// fields splits a line at the separators.
func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r < 0x80 && strings.IndexByte(separators, byte(r)) >= 0 })
}

// parseCommand decodes a command line.
func parseCommand(line string) (command, error) {
	if strings.IndexByte(line, 0) >= 0 {
		return command{}, protoErr(codeSyntax, "NUL byte in command")
	}
	f := fields(line)
	if len(f) == 0 {
		return command{}, protoErr(codeSyntax, "empty command")
	}
	word, args := f[0], f[1:]
	c := command{op: op(upper(word[0]))}
	mods := word[1:]
	if c.op == opVersion && mods != "" && upper(mods[0]) == 'F' {
		c.op, mods = opFeature, mods[1:]
	}
	lo, hi, ok := arity(c.op)
	if !ok {
		return c, protoErr(codeUnknownCommand, "unknown command %q", word)
	}
	if len(args) < lo || len(args) > hi {
		return c, protoErr(codeArgs, "%c: %d arguments, want %d to %d", c.op, len(args), lo, hi)
	}
	return c, c.decode(mods, args)
}

// arity is the number of arguments each command takes.
func arity(o op) (lo, hi int, ok bool) {
	switch o {
	case opVersion, opInfo:
		return 0, 0, true
	case opFeature:
		return 1, 1, true
	case opUpdate:
		return 4, 7, true
	case opLookup:
		return 4, 5, true
	case opDelete:
		return 2, 3, true
	case opQuery:
		return 2, 64, true
	}
	return 0, 0, false
}

func (c *command) decode(mods string, args []string) error {
	switch c.op {
	case opVersion, opFeature:
		if mods != "" {
			return protoErr(codeModifiers, "%c takes no modifiers, got %q", c.op, mods)
		}
		if c.op == opFeature {
			c.feature = args[0]
		}
		return nil
	case opInfo:
		c.flags = mods
		return checkFlags(mods, "bBlL", codeInfoModifier)
	case opDelete, opQuery:
		return c.decodeSession(mods, args)
	}
	return c.decodeStream(mods, args)
}

// decodeSession decodes D and Q: CALLID FROMTAG [TOTAG [STAT...]].
func (c *command) decodeSession(mods string, args []string) error {
	c.flags = mods
	c.callID, c.from = args[0], tag(args[1])
	if len(args) > 2 {
		c.to = tag(args[2])
	}
	if c.op == opDelete {
		return checkFlags(mods, "wW", codeDeleteModifier)
	}
	if len(args) > 3 {
		c.stats = args[3:]
	}
	return checkFlags(mods, "vV", codeQueryModifier)
}

func checkFlags(mods, allowed string, code int) error {
	for i := 0; i < len(mods); i++ {
		if strings.IndexByte(allowed, mods[i]) < 0 {
			return protoErr(code, "unknown modifier %q", mods[i])
		}
	}
	return nil
}

// decodeStream decodes U and L:
//
//	U CALLID ADDR PORT FROMTAG [TOTAG] [NOTIFY_SOCKET [NOTIFY_TAG]]
//	L CALLID ADDR PORT FROMTAG [TOTAG]
//
// rtpproxy's own U takes the notification socket and tag after FROMTAG or
// TOTAG; Kamailio sends TOTAG and then only the socket. A socket has a
// ':' ("unix:/path", "udp:host:port") or is rtpproxy's %%CC_SELF%%; a SIP
// tag has neither (RFC 3261 section 25.1, token).
func (c *command) decodeStream(mods string, args []string) error {
	m, err := parseModifiers(mods)
	if err != nil {
		return err
	}
	c.mods = m
	c.callID, c.from = args[0], tag(args[3])
	if c.media, err = parseMedia(args[1], args[2], m.ipv6); err != nil {
		return err
	}
	rest := args[4:]
	switch {
	case len(rest) == 2 && isNotifySocket(rest[0]), len(rest) == 0:
	default:
		c.to, rest = tag(rest[0]), rest[1:]
	}
	if len(rest) > 0 {
		c.notify = rest
	}
	return nil
}

func isNotifySocket(s string) bool { return strings.IndexByte(s, ':') >= 0 || s == "%%CC_SELF%%" }

// parseMedia parses the party's media address; its family must be the one
// the "6" modifier names.
func parseMedia(addr, port string, ipv6 bool) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Zone() != "" {
		return netip.AddrPort{}, protoErr(codeAddress, "invalid address %q", addr)
	}
	if a.Is6() != ipv6 {
		want := "IPv4 (no modifier 6)"
		if ipv6 {
			want = "IPv6 (modifier 6)"
		}
		return netip.AddrPort{}, protoErr(codeAddress, "address %q: want %s", addr, want)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, protoErr(codeAddress, "invalid port %q", port)
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

// parseModifiers decodes the modifiers of U and L, as rtpproxy's
// rtpp_command_ul_opts_parse does.
func parseModifiers(s string) (modifiers, error) {
	var m modifiers
	for i := 0; i < len(s); i++ {
		n, err := m.take(s[i:])
		if err != nil {
			return m, err
		}
		i += n - 1
	}
	return m, nil
}

// take decodes the modifier at the start of s and returns its length.
func (m *modifiers) take(s string) (int, error) {
	switch c := upper(s[0]); c {
	case 'E', 'I':
		if len(m.bridge) == 2 {
			code := codeExternal
			if c == 'I' {
				code = codeInternal
			}
			return 0, protoErr(code, "more than two bridge modifiers (E, I)")
		}
		m.bridge += string(c)
	case 'A':
		m.asymmetric = true
	case '6':
		m.ipv6 = true
	case 'C':
		n := span(s[1:], "0123456789,")
		if n == 0 || m.codecs != "" {
			return 0, protoErr(codeCodecs, "modifier c: want one list of payload types")
		}
		m.codecs = s[1 : 1+n]
		return 1 + n, nil
	case 'Z':
		n := span(s[1:], "0123456789")
		if p, err := strconv.Atoi(s[1 : 1+n]); err != nil || p <= 0 || p >= 1000 {
			return 0, protoErr(codePtime, "modifier z: want a ptime of 1 to 999 ms")
		}
		m.other += s[:1+n]
		return 1 + n, nil
	case 'L', 'R':
		n := addrSpan(s[1:], c == 'L')
		if n == 0 {
			code := codeLocalAddr
			if c == 'R' {
				code = codeRemoteAddr
			}
			return 0, protoErr(code, "modifier %c: want an address", s[0])
		}
		m.other += s[:1+n]
		return 1 + n, nil
	case 'S', 'W', 'N':
		m.other += s[:1]
	default:
		return 0, protoErr(codeUnknownModifier, "unknown modifier %q", s[0])
	}
	return 1, nil
}

// span is the length of the prefix of s made of chars.
func span(s, chars string) int {
	n := 0
	for n < len(s) && strings.IndexByte(chars, s[n]) >= 0 {
		n++
	}
	return n
}

// addrSpan is the length of the address at the start of s, as rtpproxy's
// extractaddr (and extractlabel for l{label}) reads it: digits and dots,
// "[hex:colons]", or "{label}". 0 means none.
func addrSpan(s string, label bool) int {
	switch {
	case s == "":
		return 0
	case s[0] == '[':
		n := span(s[1:], "0123456789abcdefABCDEF:")
		if n == 0 || 1+n >= len(s) || s[1+n] != ']' {
			return 0
		}
		return n + 2
	case s[0] == '{' && label:
		n := strings.IndexByte(s, '}')
		if n < 2 {
			return 0
		}
		return n + 1
	}
	return span(s, "0123456789.")
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// String encodes c as a command line; parsing it gives c back.
func (c command) String() string {
	var b strings.Builder
	switch c.op {
	case opVersion:
		return "V"
	case opFeature:
		return "VF " + c.feature
	case opInfo:
		return "I" + c.flags
	case opDelete, opQuery:
		b.WriteString(string(rune(c.op)) + c.flags + " " + c.callID + " " + string(c.from))
		for _, a := range append(c.tagArgs(), c.stats...) {
			b.WriteString(" " + a)
		}
		return b.String()
	}
	b.WriteString(string(rune(c.op)) + c.mods.String() + " " + c.callID + " " + c.media.Addr().String() +
		" " + strconv.Itoa(int(c.media.Port())) + " " + string(c.from))
	for _, a := range append(c.tagArgs(), c.notify...) {
		b.WriteString(" " + a)
	}
	return b.String()
}

func (c command) tagArgs() []string {
	if c.to == "" {
		return nil
	}
	return []string{string(c.to)}
}

// String encodes the modifiers in a canonical order.
func (m modifiers) String() string {
	s := m.bridge
	if m.asymmetric {
		s += "A"
	}
	if m.ipv6 {
		s += "6"
	}
	if m.codecs != "" {
		s += "c" + m.codecs
	}
	return s + m.other
}
