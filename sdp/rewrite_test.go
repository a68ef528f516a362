package sdp_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/sdp"
)

func TestRewrite(t *testing.T) {
	t.Parallel()
	a := netip.MustParseAddr("203.0.113.7")
	b := netip.MustParseAddr("203.0.113.8")
	v6 := netip.MustParseAddr("2001:db8::7")
	tests := []struct {
		name string
		in   []byte
		r    sdp.Rewrite
		want []byte
	}{{
		name: "streams sharing the session c= with different addresses get media-level c= lines",
		in:   crlf("v=0", "c=IN IP4 192.0.2.1", "m=audio 1000 RTP/AVP 0", "i=voice", "a=x", "m=video 1002 RTP/AVP 96"),
		r:    sdp.Rewrite{Media: []sdp.MediaRewrite{{Addr: a, Port: 40000}, {Addr: b, Port: 40002}}},
		want: crlf("v=0", "c=IN IP4 203.0.113.7", "m=audio 40000 RTP/AVP 0", "i=voice", "a=x", "m=video 40002 RTP/AVP 96", "c=IN IP4 203.0.113.8"),
	}, {
		name: "a stream left alone keeps the original address when the session c= moves",
		in:   crlf("v=0", "c=IN IP4 192.0.2.1", "m=audio 1000 RTP/AVP 0", "m=video 1002 RTP/AVP 96"),
		r:    sdp.Rewrite{Media: []sdp.MediaRewrite{{}, {Addr: a, Port: 40002}}},
		want: crlf("v=0", "c=IN IP4 203.0.113.7", "m=audio 1000 RTP/AVP 0", "c=IN IP4 192.0.2.1", "m=video 40002 RTP/AVP 96"),
	}, {
		name: "streams on one address rewrite only the session c=",
		in:   crlf("v=0", "c=IN IP4 192.0.2.1", "m=audio 1000 RTP/AVP 0", "m=video 1002 RTP/AVP 96"),
		r:    sdp.Rewrite{Media: []sdp.MediaRewrite{{Addr: a, Port: 40000}, {Addr: a, Port: 40002}}},
		want: crlf("v=0", "c=IN IP4 203.0.113.7", "m=audio 40000 RTP/AVP 0", "m=video 40002 RTP/AVP 96"),
	}, {
		name: "a stream without any c= gets one after its m= line",
		in:   []byte("v=0\nm=audio 1000 RTP/AVP 0\na=sendrecv\n"),
		r:    sdp.Rewrite{Media: []sdp.MediaRewrite{{Addr: v6, Port: 40000}}},
		want: []byte("v=0\nm=audio 40000 RTP/AVP 0\nc=IN IP6 2001:db8::7\na=sendrecv\n"),
	}, {
		name: "an unterminated last m= line gets its c= after a line ending",
		in:   []byte("v=0\r\nm=audio 1000 RTP/AVP 0"),
		r:    sdp.Rewrite{Media: []sdp.MediaRewrite{{Addr: a}}},
		want: []byte("v=0\r\nm=audio 1000 RTP/AVP 0\r\nc=IN IP4 203.0.113.7"),
	}, {
		name: "an explicit rtcp port that is not rtp+1 adds a=rtcp at the end of the section",
		in:   crlf("v=0", "c=IN IP4 192.0.2.1", "m=audio 1000 RTP/AVP 0", "a=sendrecv", "", "m=video 0 RTP/AVP 96"),
		r:    sdp.Rewrite{Media: []sdp.MediaRewrite{{Addr: a, Port: 40000, RTCPPort: 40011}}},
		want: crlf("v=0", "c=IN IP4 203.0.113.7", "m=audio 40000 RTP/AVP 0", "a=sendrecv", "a=rtcp:40011", "", "m=video 0 RTP/AVP 96"),
	}, {
		name: "an explicit rtcp port of rtp+1 adds nothing",
		in:   crlf("v=0", "m=audio 1000 RTP/AVP 0"),
		r:    sdp.Rewrite{Media: []sdp.MediaRewrite{{Port: 40000, RTCPPort: 40001}}},
		want: crlf("v=0", "m=audio 40000 RTP/AVP 0"),
	}, {
		name: "an explicit rtcp port replaces the a=rtcp port and its address",
		in:   crlf("v=0", "m=audio 1000 RTP/AVP 0", "c=IN IP6 2001:db8::15", "a=rtcp:1001 IN IP6 2001:db8::15"),
		r:    sdp.Rewrite{Media: []sdp.MediaRewrite{{Addr: a, Port: 40000, RTCPPort: 50000}}},
		want: crlf("v=0", "m=audio 40000 RTP/AVP 0", "c=IN IP4 203.0.113.7", "a=rtcp:50000 IN IP4 203.0.113.7"),
	}, {
		name: "a=rtcp equal to the rtp port under rtcp-mux stays equal",
		in:   crlf("v=0", "m=audio 9 RTP/SAVPF 111", "c=IN IP4 192.0.2.1", "a=rtcp:9", "a=rtcp-mux"),
		r:    sdp.Rewrite{Media: []sdp.MediaRewrite{{Addr: a, Port: 40000}}},
		want: crlf("v=0", "m=audio 40000 RTP/SAVPF 111", "c=IN IP4 203.0.113.7", "a=rtcp:40000", "a=rtcp-mux"),
	}, {
		name: "an address change alone keeps the ports",
		in:   crlf("v=0", "m=audio 1000 RTP/AVP 0", "c=IN IP4 192.0.2.1", "a=rtcp:1001 IN IP4 192.0.2.1"),
		r:    sdp.Rewrite{Media: []sdp.MediaRewrite{{Addr: a}}},
		want: crlf("v=0", "m=audio 1000 RTP/AVP 0", "c=IN IP4 203.0.113.7", "a=rtcp:1001 IN IP4 203.0.113.7"),
	}, {
		name: "a rejected stream is untouched even with a rewrite entry",
		in:   crlf("v=0", "c=IN IP4 192.0.2.1", "m=audio 1000 RTP/AVP 0", "m=video 0 RTP/AVP 96", "c=IN IP4 192.0.2.1"),
		r:    sdp.Rewrite{Media: []sdp.MediaRewrite{{Addr: a, Port: 40000}, {Addr: b, Port: 40002}}},
		want: crlf("v=0", "c=IN IP4 203.0.113.7", "m=audio 40000 RTP/AVP 0", "m=video 0 RTP/AVP 96", "c=IN IP4 192.0.2.1"),
	}, {
		name: "a hold address is kept while the port moves",
		in:   crlf("v=0", "m=audio 1000 RTP/AVP 0", "c=IN IP4 0.0.0.0", "a=rtcp:1001 IN IP4 0.0.0.0", "a=sendonly"),
		r:    sdp.Rewrite{Media: []sdp.MediaRewrite{{Addr: a, Port: 40000}}},
		want: crlf("v=0", "m=audio 40000 RTP/AVP 0", "c=IN IP4 0.0.0.0", "a=rtcp:40001 IN IP4 0.0.0.0", "a=sendonly"),
	}, {
		name: "the origin and ICE are left alone unless asked for",
		in:   crlf("v=0", "o=- 1 1 IN IP4 192.0.2.1", "a=ice-lite", "m=audio 1000 RTP/AVP 0", "a=candidate:1 1 UDP 1 192.0.2.1 1000 typ host"),
		r:    sdp.Rewrite{Media: []sdp.MediaRewrite{{Port: 40000}}},
		want: crlf("v=0", "o=- 1 1 IN IP4 192.0.2.1", "a=ice-lite", "m=audio 40000 RTP/AVP 0", "a=candidate:1 1 UDP 1 192.0.2.1 1000 typ host"),
	}, {
		name: "the origin moves across families and ICE goes at both levels",
		in:   crlf("v=0", "o=- 1 1 IN IP4 pbx.example.com", "a=ice-lite", "a=ice-options:trickle", "m=audio 1000 RTP/AVP 0", "a=ice-ufrag:u", "a=x", "a=end-of-candidates"),
		r:    sdp.Rewrite{Origin: v6, RemoveICE: true},
		want: crlf("v=0", "o=- 1 1 IN IP6 2001:db8::7", "m=audio 1000 RTP/AVP 0", "a=x"),
	}, {
		name: "a port count suffix and a multicast ttl are handled",
		in:   crlf("v=0", "m=video 49170/2 RTP/AVP 31", "c=IN IP4 224.2.1.1/127/2"),
		r:    sdp.Rewrite{Media: []sdp.MediaRewrite{{Addr: a, Port: 40000}}},
		want: crlf("v=0", "m=video 40000/2 RTP/AVP 31", "c=IN IP4 203.0.113.7"),
	}, {
		name: "the zero rewrite returns the input unchanged",
		in:   []byte("\nv=0 \r\nm=audio 1 RTP/AVP 0\nc=IN IP4 192.0.2.1 \n\n"),
		want: []byte("\nv=0 \r\nm=audio 1 RTP/AVP 0\nc=IN IP4 192.0.2.1 \n\n"),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := parse(t, tt.in)
			got := rewrite(t, s, tt.r)
			if diff := cmp.Diff(string(tt.want), string(got)); diff != "" {
				t.Errorf("Rewrite (-want +got):\n%s", diff)
			}
			if again := rewrite(t, parse(t, got), tt.r); string(again) != string(got) {
				t.Errorf("not idempotent (-first +second):\n%s", cmp.Diff(string(got), string(again)))
			}
		})
	}
}

func TestRewriteErrors(t *testing.T) {
	t.Parallel()
	a := netip.MustParseAddr("203.0.113.7")
	in := crlf("v=0", "m=audio 1000 RTP/AVP 0", "a=rtcp:1001", "m=audio 2000 RTP/AVP 0")
	tests := []struct {
		name string
		r    sdp.Rewrite
		want string
	}{
		{"more entries than media sections are refused", sdp.Rewrite{Media: make([]sdp.MediaRewrite, 3)}, "sdp: rewrite of 3 media sections, session has 2"},
		{"a port above 65535 is refused", sdp.Rewrite{Media: []sdp.MediaRewrite{{}, {Port: 70000}}}, "sdp: media 1: invalid port 70000"},
		{"a negative port is refused", sdp.Rewrite{Media: []sdp.MediaRewrite{{Port: -1}}}, "sdp: media 0: invalid port -1"},
		{"a negative rtcp port is refused", sdp.Rewrite{Media: []sdp.MediaRewrite{{RTCPPort: -1}}}, "sdp: media 0: invalid rtcp port -1"},
		{"rtp+1 above 65535 is refused when a=rtcp must carry it", sdp.Rewrite{Media: []sdp.MediaRewrite{{Port: 65535}}}, "sdp: media 0: invalid rtcp port 65536"},
		{"the hold address is not a relay address", sdp.Rewrite{Media: []sdp.MediaRewrite{{Addr: netip.IPv4Unspecified()}}}, `sdp: media 0: invalid address "0.0.0.0"`},
		{"an address with a zone is refused", sdp.Rewrite{Media: []sdp.MediaRewrite{{Addr: netip.MustParseAddr("fe80::1%eth0")}}}, `sdp: media 0: invalid address "fe80::1%eth0"`},
		{"an unspecified origin is refused", sdp.Rewrite{Origin: netip.IPv6Unspecified(), Media: []sdp.MediaRewrite{{Addr: a}}}, `sdp: origin: invalid address "::"`},
	}
	s := parse(t, in)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := s.Rewrite(tt.r)
			if err == nil {
				t.Fatalf("Rewrite succeeded, want %q", tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}
