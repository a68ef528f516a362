package sdp_test

import (
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/sdp"
)

// benchSDP is a typical desk-phone offer: audio and video on a session-level
// c=, a=rtcp on each stream.
var benchSDP = crlf(
	"v=0",
	"o=- 1689765432 1689765432 IN IP4 192.168.1.101",
	"s=Polycom IP Phone",
	"c=IN IP4 192.168.1.101",
	"b=AS:2048",
	"t=0 0",
	"m=audio 2222 RTP/AVP 9 0 8 18 101",
	"a=rtpmap:9 G722/8000",
	"a=rtpmap:0 PCMU/8000",
	"a=rtpmap:8 PCMA/8000",
	"a=rtpmap:18 G729/8000",
	"a=fmtp:18 annexb=no",
	"a=rtpmap:101 telephone-event/8000",
	"a=fmtp:101 0-15",
	"a=rtcp:2223",
	"a=sendrecv",
	"m=video 2224 RTP/AVP 109 34",
	"b=TIAS:1024000",
	"a=rtpmap:109 H264/90000",
	"a=fmtp:109 profile-level-id=42801f;packetization-mode=1",
	"a=rtpmap:34 H263/90000",
	"a=rtcp-fb:* nack pli",
	"a=rtcp-fb:* ccm fir",
	"a=rtcp:2225",
	"a=sendrecv",
)

func BenchmarkParseRewrite(b *testing.B) {
	r := sdp.Rewrite{Origin: relay4, Media: []sdp.MediaRewrite{
		{Addr: relay4, Port: 40000},
		{Addr: relay4, Port: 40002},
	}}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchSDP)))
	for b.Loop() {
		s, err := sdp.Parse(benchSDP)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Rewrite(r); err != nil {
			b.Fatal(err)
		}
	}
}
