package sdp_test

import (
	"fmt"
	"net/netip"

	"github.com/nftrtpproxy/nftrtpproxy/sdp"
)

// A relay that allocated one RTP port per offered stream puts itself in the
// media path; rejected streams are skipped and passed through. (LF endings
// keep the example output readable; CRLF bodies are kept CRLF.)
func ExampleSession_Rewrite() {
	offer := []byte("v=0\n" +
		"o=- 20048 20048 IN IP4 10.0.0.23\n" +
		"s=-\n" +
		"c=IN IP4 10.0.0.23\n" +
		"t=0 0\n" +
		"m=audio 11800 RTP/AVP 0 101\n" +
		"a=rtcp:11801\n" +
		"a=sendrecv\n" +
		"m=video 0 RTP/AVP 96\n")
	s, err := sdp.Parse(offer)
	if err != nil {
		fmt.Println(err)
		return
	}
	relay := netip.MustParseAddr("203.0.113.7")
	r := sdp.Rewrite{Origin: relay, Media: make([]sdp.MediaRewrite, len(s.Media))}
	next := 40000 // as if from the relay's port allocator
	for i, m := range s.Media {
		if m.Rejected() {
			continue
		}
		r.Media[i] = sdp.MediaRewrite{Addr: relay, Port: next}
		next += 2
	}
	out, err := s.Rewrite(r)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(out))
	// Output:
	// v=0
	// o=- 20048 20048 IN IP4 203.0.113.7
	// s=-
	// c=IN IP4 203.0.113.7
	// t=0 0
	// m=audio 40000 RTP/AVP 0 101
	// a=rtcp:40001
	// a=sendrecv
	// m=video 0 RTP/AVP 96
}
