package sdp_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/sdp"
)

// addSeeds seeds f with every testdata SDP, inputs and goldens alike.
func addSeeds(f *testing.F, add func(b []byte)) {
	f.Helper()
	files, err := filepath.Glob("testdata/*.sdp")
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds in testdata: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}

// FuzzParse checks that Parse never panics, that its errors are
// *ParseError on a real line, and that the zero rewrite reproduces the
// input byte for byte.
func FuzzParse(f *testing.F) {
	addSeeds(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := sdp.Parse(in)
		if err != nil {
			var pe *sdp.ParseError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error %v (%T) is not a ParseError with a line", err, err)
			}
			return
		}
		out, err := s.Rewrite(sdp.Rewrite{})
		if err != nil {
			t.Fatalf("zero rewrite: %v", err)
		}
		if string(out) != string(in) {
			t.Fatalf("zero rewrite changed the body:\n%q\n%q", in, out)
		}
	})
}

// FuzzRewrite rewrites whatever parses with a spec drawn from the fuzz
// arguments and checks that the result parses, says what was asked for,
// keeps every untargeted line and does not change when rewritten again.
func FuzzRewrite(f *testing.F) {
	addSeeds(f, func(b []byte) {
		f.Add(b, uint16(40000), uint16(0), uint8(0xff), false, false)
		f.Add(b, uint16(1), uint16(9), uint8(0x05), true, true)
	})
	f.Fuzz(func(t *testing.T, in []byte, port, rtcp uint16, mask uint8, v6, noICE bool) {
		s, err := sdp.Parse(in)
		if err != nil {
			return
		}
		r := fuzzRewrite(s, int(port), int(rtcp), mask, v6, noICE)
		out, err := s.Rewrite(r)
		if err != nil {
			t.Fatalf("Rewrite(%+v): %v", r, err)
		}
		after, err := sdp.Parse(out)
		if err != nil {
			t.Fatalf("output does not parse: %v\n%q", err, out)
		}
		if err := checkRewritten(s, after, r); err != nil {
			t.Fatalf("%v\n%q\n%q", err, in, out)
		}
		if err := checkUntouched(in, out, r.RemoveICE); err != nil {
			t.Fatalf("%v\n%q\n%q", err, in, out)
		}
		again, err := after.Rewrite(r)
		if err != nil || string(again) != string(out) {
			t.Fatalf("not idempotent (err %v):\n%q\n%q", err, out, again)
		}
	})
}

// fuzzRewrite builds a valid spec: stream i is rewritten if bit i%8 of mask
// is set, with RTP port base+2i kept within 1..65534 and, if rtcp is not
// zero, an explicit RTCP port.
func fuzzRewrite(s *sdp.Session, base, rtcp int, mask uint8, v6, noICE bool) sdp.Rewrite {
	relay := relay4
	if v6 {
		relay = relay6
	}
	r := sdp.Rewrite{RemoveICE: noICE, Media: make([]sdp.MediaRewrite, len(s.Media))}
	if mask&1 != 0 {
		r.Origin = relay
	}
	for i := range s.Media {
		if mask&(1<<(i%8)) == 0 {
			continue
		}
		r.Media[i] = sdp.MediaRewrite{Addr: relay, Port: 1 + (base+2*i)%65534, RTCPPort: rtcp}
		if i%3 == 2 {
			r.Media[i].Addr = netip.Addr{} // port only: exercises the original-address path
		}
	}
	return r
}
