package mediaproxy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Commands of the dispatcher protocol.
const (
	CmdUpdate = "update"
	CmdRemove = "remove"
)

// Limits of one request: the module's request buffer holds 8192 bytes and
// 32 streams (mediaproxy.c: BUFFER_SIZE, MAX_STREAMS).
const (
	maxRequest = 8192
	maxLines   = 64
	maxStreams = 32
)

// Request is one command of the module: its name on the first line, then
// "name: value" lines, ended by an empty line.
type Request struct {
	Command string
	Update  *Update // CmdUpdate
	Remove  *Remove // CmdRemove
}

// Update reports the SDP of a SIP message (use_media_proxy, or the dialog
// callbacks of engage_media_proxy).
type Update struct {
	// Type is "request" or "reply": with the tags it tells whose SDP this is.
	Type      string
	DialogID  string // "h_entry:h_id" with engage_media_proxy, else empty
	CallID    string
	CSeq      uint32
	FromURI   string
	ToURI     string
	FromTag   string
	ToTag     string // empty in provisional replies and initial requests
	UserAgent string
	// SignalingIP is the message's source address (or the module's
	// signaling_ip_avp): where the SDP's sender sits.
	SignalingIP netip.Addr
	MediaRelay  string
	// Media lists the SDP's streams with a supported transport, in order;
	// nil when the message has no SDP (a 200 OK to an INVITE).
	Media []Stream
}

// Stream is one entry "type:ip:port:direction:ice=yes|no" of the media
// header.
type Stream struct {
	Type      string
	IP        netip.Addr
	Port      uint16
	Direction string // sendrecv, sendonly, recvonly or inactive
	ICE       bool
}

// Hold reports whether the stream's sender put it on hold (RFC 3264 §8.4:
// sendonly, inactive, or the RFC 2543 hold address 0.0.0.0).
func (s Stream) Hold() bool {
	return s.Direction == "sendonly" || s.Direction == "inactive" || s.IP.IsUnspecified()
}

// Remove ends a call's media (end_media_session, or the end of a dialog of
// engage_media_proxy).
type Remove struct {
	CallID, FromTag, ToTag string
}

// required headers, as AG Projects' media relay requires them.
var required = map[string][]string{
	CmdUpdate: {"type", "call_id", "from_tag", "from_uri", "to_uri", "cseq", "user_agent"},
	CmdRemove: {"call_id", "from_tag"},
}

// Parse decodes one request: lines ending in CRLF (or LF), the command
// first, headers "name: value" after, the empty line that ends it optional.
// As the reference dispatcher does, a header with an empty value ("to_tag:
// ") counts as absent and unknown headers are ignored.
func Parse(b []byte) (*Request, error) {
	if len(b) > maxRequest {
		return nil, fmt.Errorf("%w: %d bytes (at most %d)", errTooLong, len(b), maxRequest)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	for len(lines) > 0 && strings.TrimSuffix(lines[len(lines)-1], "\r") == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return nil, errEmpty
	}
	if len(lines) > maxLines {
		return nil, fmt.Errorf("%w: %d lines (at most %d)", errTooLong, len(lines), maxLines)
	}
	r := &Request{Command: strings.TrimSuffix(lines[0], "\r")}
	h, err := headers(lines[1:])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Command, err)
	}
	need, ok := required[r.Command]
	if !ok {
		return nil, fmt.Errorf("%w %q", errUnknownCommand, r.Command)
	}
	for _, k := range need {
		if h[k] == "" {
			return nil, fmt.Errorf("%s: %w %q", r.Command, errMissing, k)
		}
	}
	if r.Command == CmdRemove {
		r.Remove = &Remove{CallID: h["call_id"], FromTag: h["from_tag"], ToTag: h["to_tag"]}
		return r, nil
	}
	r.Update, err = update(h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Command, err)
	}
	return r, nil
}

func headers(lines []string) (map[string]string, error) {
	h := map[string]string{}
	for i, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		if strings.ContainsAny(l, "\r\x00") {
			return nil, fmt.Errorf("line %d: %w: control character", i+2, errSyntax)
		}
		name, value, ok := strings.Cut(l, ": ")
		if !ok {
			if strings.HasSuffix(l, ":") && !strings.Contains(l[:len(l)-1], ":") {
				continue // "name:" with the space trimmed: an empty value
			}
			return nil, fmt.Errorf("line %d: %w: %q is not \"name: value\"", i+2, errSyntax, l)
		}
		if value != "" {
			h[name] = value
		}
	}
	return h, nil
}

func update(h map[string]string) (*Update, error) {
	u := &Update{Type: h["type"], DialogID: h["dialog_id"], CallID: h["call_id"], FromURI: h["from_uri"],
		ToURI: h["to_uri"], FromTag: h["from_tag"], ToTag: h["to_tag"], UserAgent: h["user_agent"], MediaRelay: h["media_relay"]}
	if u.Type != "request" && u.Type != "reply" {
		return nil, fmt.Errorf("%w: type %q (want request or reply)", errSyntax, u.Type)
	}
	cseq, err := strconv.ParseUint(h["cseq"], 10, 32)
	if err != nil {
		return nil, fmt.Errorf("%w: cseq %q", errSyntax, h["cseq"])
	}
	u.CSeq = uint32(cseq)
	if s := h["signaling_ip"]; s != "" {
		if u.SignalingIP, err = parseAddr(s); err != nil {
			return nil, fmt.Errorf("signaling_ip: %w", err)
		}
	}
	if m, ok := h["media"]; ok {
		if u.Media, err = parseMedia(m); err != nil {
			return nil, fmt.Errorf("media: %w", err)
		}
	}
	return u, nil
}

// parseMedia reads "type:ip:port:direction:ice=yes|no,..." (IPv6
// addresses have colons: the fields are taken from both ends).
func parseMedia(s string) ([]Stream, error) {
	parts := strings.Split(s, ",")
	if len(parts) > maxStreams {
		return nil, fmt.Errorf("%w: %d streams (at most %d)", errSyntax, len(parts), maxStreams)
	}
	out := make([]Stream, 0, len(parts))
	for i, p := range parts {
		st, err := parseStream(p)
		if err != nil {
			return nil, fmt.Errorf("stream %d: %w", i+1, err)
		}
		out = append(out, st)
	}
	return out, nil
}

func parseStream(p string) (Stream, error) {
	typ, rest, ok := strings.Cut(p, ":")
	f := strings.Split(rest, ":")
	if !ok || typ == "" || len(f) < 4 {
		return Stream{}, fmt.Errorf("%w: %q is not type:ip:port:direction:ice", errSyntax, p)
	}
	n := len(f)
	st := Stream{Type: typ, Direction: strings.ToLower(f[n-2])}
	ip, err := parseAddr(strings.Join(f[:n-3], ":"))
	if err != nil {
		return Stream{}, err
	}
	st.IP = ip
	port, err := strconv.ParseUint(f[n-3], 10, 16)
	if err != nil {
		return Stream{}, fmt.Errorf("%w: port %q", errSyntax, f[n-3])
	}
	st.Port = uint16(port)
	switch st.Direction {
	case "sendrecv", "sendonly", "recvonly", "inactive":
	default:
		return Stream{}, fmt.Errorf("%w: direction %q", errSyntax, f[n-2])
	}
	switch f[n-1] {
	case "ice=yes":
		st.ICE = true
	case "ice=no":
	default:
		return Stream{}, fmt.Errorf("%w: %q (want ice=yes or ice=no)", errSyntax, f[n-1])
	}
	if strings.ContainsAny(typ, " \t") {
		return Stream{}, fmt.Errorf("%w: media type %q", errSyntax, typ)
	}
	return st, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%w: address %q", errSyntax, s)
	}
	return a.Unmap(), nil
}

// Format writes r as the module writes it (CRLF lines, the empty line at
// the end); absent values are left out.
func (r *Request) Format() string {
	var b strings.Builder
	b.WriteString(r.Command + "\r\n")
	add := func(k, v string) {
		if v != "" {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	if u := r.Update; u != nil {
		add("type", u.Type)
		add("dialog_id", u.DialogID)
		add("call_id", u.CallID)
		add("cseq", strconv.FormatUint(uint64(u.CSeq), 10))
		add("from_uri", u.FromURI)
		add("to_uri", u.ToURI)
		add("from_tag", u.FromTag)
		add("to_tag", u.ToTag)
		add("user_agent", u.UserAgent)
		if u.SignalingIP.IsValid() {
			add("signaling_ip", u.SignalingIP.String())
		}
		add("media_relay", u.MediaRelay)
		if u.Media != nil {
			s := make([]string, len(u.Media))
			for i, m := range u.Media {
				ice := "ice=no"
				if m.ICE {
					ice = "ice=yes"
				}
				s[i] = fmt.Sprintf("%s:%s:%d:%s:%s", m.Type, m.IP, m.Port, m.Direction, ice)
			}
			add("media", strings.Join(s, ","))
		}
	}
	if rm := r.Remove; rm != nil {
		add("call_id", rm.CallID)
		add("from_tag", rm.FromTag)
		add("to_tag", rm.ToTag)
	}
	b.WriteString("\r\n")
	return b.String()
}
