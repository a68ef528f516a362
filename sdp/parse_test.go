package sdp_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/sdp"
)

// crlf joins lines with CRLF, as SIP devices should send them.
func crlf(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}

func TestParse(t *testing.T) {
	t.Parallel()
	sessC := &sdp.Connection{NetType: "IN", AddrType: "IP4", Addr: netip.MustParseAddr("192.0.2.1")}
	tests := []struct {
		name string
		in   []byte
		want *sdp.Session
	}{{
		name: "a two-stream offer inherits the session c= and direction",
		in: crlf("v=0", "o=- 1 2 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
			"a=sendonly", "m=audio 49170 RTP/AVP 0 101", "a=rtcp:49171",
			"m=video 51372/2 RTP/SAVP 99", "a=recvonly"),
		want: &sdp.Session{
			Origin:     &sdp.Origin{Username: "-", SessionID: "1", SessionVersion: "2", NetType: "IN", AddrType: "IP4", Address: "192.0.2.1"},
			Connection: sessC,
			Direction:  sdp.SendOnly,
			Media: []sdp.Media{{
				Type: "audio", Port: 49170, PortCount: 1, Proto: "RTP/AVP", Formats: []string{"0", "101"},
				Connection: sessC, RTCP: &sdp.RTCP{Port: 49171}, Direction: sdp.SendOnly,
			}, {
				Type: "video", Port: 51372, PortCount: 2, Proto: "RTP/SAVP", Formats: []string{"99"},
				Connection: sessC, Direction: sdp.RecvOnly,
			}},
		},
	}, {
		name: "a media-level c= and a=rtcp with an IPv6 address are parsed",
		in: []byte("v=0\nm=audio 7078 RTP/AVP 0\nc=IN IP6 2001:db8::15\n" +
			"a=rtcp:7079 IN IP6 2001:db8::16\na=rtcp-mux\na=ice-ufrag:x\n"),
		want: &sdp.Session{Media: []sdp.Media{{
			Type: "audio", Port: 7078, PortCount: 1, Proto: "RTP/AVP", Formats: []string{"0"},
			Connection: &sdp.Connection{NetType: "IN", AddrType: "IP6", Addr: netip.MustParseAddr("2001:db8::15")},
			RTCP:       &sdp.RTCP{Port: 7079, NetType: "IN", AddrType: "IP6", Addr: netip.MustParseAddr("2001:db8::16")},
			RTCPMux:    true, ICE: true,
		}}},
	}, {
		name: "session-level ICE applies to every stream and unknown lines are ignored",
		in:   crlf("", "v=0", "x=unknown", "garbage", "a=ice-lite", "m=image 0 udptl t38", "", ""),
		want: &sdp.Session{ICE: true, Media: []sdp.Media{{
			Type: "image", Port: 0, PortCount: 1, Proto: "udptl", Formats: []string{"t38"}, ICE: true,
		}}},
	}, {
		name: "a username with spaces keeps the last five o= fields in place",
		in:   crlf("v=0", "o=Cisco SDP 7 8 IN IP4 host.example.com"),
		want: &sdp.Session{Origin: &sdp.Origin{Username: "Cisco SDP", SessionID: "7", SessionVersion: "8",
			NetType: "IN", AddrType: "IP4", Address: "host.example.com"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := sdp.Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMediaHold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		lines    []string
		hold     bool
		rejected bool
	}{
		{"a sendrecv stream with a real address is not on hold", []string{"c=IN IP4 192.0.2.1", "m=audio 1 RTP/AVP 0"}, false, false},
		{"c=0.0.0.0 is the RFC 2543 hold", []string{"c=IN IP4 0.0.0.0", "m=audio 1 RTP/AVP 0"}, true, false},
		{"c=IN IP6 :: is hold too", []string{"m=audio 1 RTP/AVP 0", "c=IN IP6 ::"}, true, false},
		{"sendonly is hold", []string{"c=IN IP4 192.0.2.1", "m=audio 1 RTP/AVP 0", "a=sendonly"}, true, false},
		{"session-level inactive is hold", []string{"a=inactive", "m=audio 1 RTP/AVP 0"}, true, false},
		{"recvonly answers a hold and is not one", []string{"m=audio 1 RTP/AVP 0", "a=recvonly"}, false, false},
		{"port 0 is rejected", []string{"m=video 0 RTP/AVP 96"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := sdp.Parse(crlf(append([]string{"v=0"}, tt.lines...)...))
			if err != nil {
				t.Fatal(err)
			}
			m := &s.Media[0]
			if m.OnHold() != tt.hold || m.Rejected() != tt.rejected {
				t.Errorf("OnHold, Rejected = %v, %v; want %v, %v", m.OnHold(), m.Rejected(), tt.hold, tt.rejected)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"an empty body has no v= line", "", `sdp: line 1: missing v= line`},
		{"blank lines only have no v= line", "\r\n\r\n", `sdp: line 1: missing v= line`},
		{"a body starting with o= has no v= line", "o=- 1 1 IN IP4 192.0.2.1\r\nv=0\r\n", `sdp: line 1: missing v= line`},
		{"an unknown version is refused", "v=1\r\n", `sdp: line 1: unsupported version "1"`},
		{"a port above 65535 is refused", "v=0\r\ns=-\r\nt=0 0\r\nc=IN IP4 192.0.2.1\r\na=x\r\na=y\r\nm=audio 70000 RTP/AVP 0\r\n", `sdp: line 7: invalid port "70000"`},
		{"a signed port is refused", "v=0\nm=audio +5 RTP/AVP 0\n", `sdp: line 2: invalid port "+5"`},
		{"a non-numeric port count is refused", "v=0\nm=video 49170/x RTP/AVP 31\n", `sdp: line 2: invalid port count "x"`},
		{"a zero port count is refused", "v=0\nm=video 49170/0 RTP/AVP 31\n", `sdp: line 2: invalid port count "0"`},
		{"an m= line needs media, port and proto", "v=0\nm=audio 49170\n", `sdp: line 2: too few fields in m= line "audio 49170"`},
		{"a truncated IPv4 address is refused", "v=0\ns=-\nc=IN IP4 1.2.3\n", `sdp: line 3: invalid connection address "1.2.3"`},
		{"a host name in c= is refused", "v=0\nc=IN IP4 pbx.example.com\n", `sdp: line 2: invalid connection address "pbx.example.com"`},
		{"an IPv6 address under IP4 is refused", "v=0\nc=IN IP4 2001:db8::1\n", `sdp: line 2: connection address "2001:db8::1" is not IP4`},
		{"an IPv4 address under IP6 is refused", "v=0\nc=IN IP6 192.0.2.1\n", `sdp: line 2: connection address "192.0.2.1" is not IP6`},
		{"an address with a zone is refused", "v=0\nc=IN IP6 fe80::1%eth0\n", `sdp: line 2: invalid connection address "fe80::1%eth0"`},
		{"an unknown address type is refused", "v=0\nc=IN IPX 192.0.2.1\n", `sdp: line 2: unknown address type "IPX"`},
		{"a c= line needs three fields", "v=0\nc=IN IP4\n", `sdp: line 2: too few fields in c= line "IN IP4"`},
		{"two session-level c= lines are refused", "v=0\nc=IN IP4 192.0.2.1\nc=IN IP4 192.0.2.2\n", `sdp: line 3: duplicate c= line`},
		{"two media-level c= lines are refused", "v=0\nm=audio 1 RTP/AVP 0\nc=IN IP4 192.0.2.1\nc=IN IP4 192.0.2.2\n", `sdp: line 4: duplicate c= line`},
		{"an o= line needs six fields", "v=0\no=- 1 IN IP4 192.0.2.1\n", `sdp: line 2: too few fields in o= line "- 1 IN IP4 192.0.2.1"`},
		{"two o= lines are refused", "v=0\no=- 1 1 IN IP4 192.0.2.1\no=- 1 1 IN IP4 192.0.2.1\n", `sdp: line 3: duplicate o= line`},
		{"a non-numeric a=rtcp port is refused", "v=0\nm=audio 1 RTP/AVP 0\na=rtcp:abc\n", `sdp: line 3: invalid a=rtcp port "abc"`},
		{"an a=rtcp port above 65535 is refused", "v=0\nm=audio 1 RTP/AVP 0\na=rtcp:65536\n", `sdp: line 3: invalid a=rtcp port "65536"`},
		{"an a=rtcp without a value is refused", "v=0\nm=audio 1 RTP/AVP 0\na=rtcp\n", `sdp: line 3: invalid a=rtcp port ""`},
		{"an a=rtcp with a partial address is refused", "v=0\nm=audio 1 RTP/AVP 0\na=rtcp:2 IN IP4\n", `sdp: line 3: invalid a=rtcp attribute "2 IN IP4"`},
		{"an a=rtcp with a bad address is refused", "v=0\nm=audio 1 RTP/AVP 0\na=rtcp:2 IN IP4 1.2.3.4.5\n", `sdp: line 3: invalid a=rtcp address "1.2.3.4.5"`},
		{"two a=rtcp attributes are refused", "v=0\nm=audio 1 RTP/AVP 0\na=rtcp:2\na=rtcp:3\n", `sdp: line 4: duplicate a=rtcp attribute`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := sdp.Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded with %d media, want error %q", len(s.Media), tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			var pe *sdp.ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error is %T, want *sdp.ParseError", err)
			}
		})
	}
}

func TestDirectionString(t *testing.T) {
	t.Parallel()
	got := []string{sdp.SendRecv.String(), sdp.SendOnly.String(), sdp.RecvOnly.String(), sdp.Inactive.String(), sdp.Direction(9).String()}
	want := []string{"sendrecv", "sendonly", "recvonly", "inactive", "Direction(9)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("String (-want +got):\n%s", diff)
	}
}
