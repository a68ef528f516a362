package sdp_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nftrtpproxy/nftrtpproxy/sdp"
)

// cmpOpts compares parsed sessions by their exported fields.
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmpopts.IgnoreUnexported(sdp.Session{}, sdp.Origin{}, sdp.Connection{}, sdp.RTCP{}, sdp.Media{}),
	cmpopts.EquateEmpty(),
}

// srcLine is one line of an SDP body, split independently of the package.
type srcLine struct{ text, eol string }

// splitLines splits b at LF, counting a CR before the LF as part of the
// ending, as RFC 8866 §5 and the package do.
func splitLines(b []byte) []srcLine {
	var out []srcLine
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return append(out, srcLine{string(b), ""})
		}
		text, eol := b[:i], "\n"
		if t, ok := bytes.CutSuffix(text, []byte("\r")); ok {
			text, eol = t, "\r\n"
		}
		out = append(out, srcLine{string(text), eol})
		b = b[i+1:]
	}
	return out
}

// targeted reports whether Rewrite may change, insert or remove the line.
func targeted(text string, removeICE bool) bool {
	for _, p := range []string{"m=", "c=", "o=", "a=rtcp:"} {
		if strings.HasPrefix(text, p) {
			return true
		}
	}
	return removeICE && isICELine(text)
}

// isICELine reports an ICE attribute line (RFC 8839 §5).
func isICELine(text string) bool {
	name, _, _ := strings.Cut(strings.TrimPrefix(text, "a="), ":")
	switch strings.TrimRight(name, " \t\r") {
	case "ice-ufrag", "ice-pwd", "ice-options", "ice-lite", "ice-mismatch",
		"ice-pacing", "candidate", "end-of-candidates", "remote-candidates":
		return strings.HasPrefix(text, "a=")
	}
	return false
}

// checkUntouched verifies mechanically that every line of in that the
// rewrite does not target appears in out byte for byte, in the same order.
// An input line without an ending (the last one) may gain one.
func checkUntouched(in, out []byte, removeICE bool) error {
	kept := func(b []byte) []srcLine {
		var ls []srcLine
		for _, l := range splitLines(b) {
			if !targeted(l.text, removeICE) {
				ls = append(ls, l)
			}
		}
		return ls
	}
	want, got := kept(in), kept(out)
	for i := range want {
		// An unterminated last line may gain an ending after it, which
		// can absorb a stray CR of its own; its bytes must still lead.
		if i < len(got) && want[i].eol == "" && strings.HasPrefix(got[i].text+got[i].eol, want[i].text) {
			got[i] = want[i]
		}
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(srcLine{})); diff != "" {
		return fmt.Errorf("untargeted lines changed (-want +got):\n%s", diff)
	}
	if removeICE {
		for _, l := range splitLines(out) {
			if isICELine(l.text) {
				return fmt.Errorf("ICE line %q left after removal", l.text)
			}
		}
	}
	return nil
}

// relay4 and relay6 are the golden cases' relay addresses.
var (
	relay4 = netip.MustParseAddr("203.0.113.7")
	relay6 = netip.MustParseAddr("2001:db8::7")
)

// goldenRewrite is the rewrite every golden case gets, so that no case needs
// a spec file: each m= line i that is not rejected moves to the relay
// address with RTP port 40000+2i (RTCP follows the package default); o=
// gets the relay address. The relay address is 203.0.113.7, or 2001:db8::7
// for cases whose name contains "ipv6-bridge". Cases whose name ends in
// "-noice" have their ICE attributes removed.
func goldenRewrite(name string, s *sdp.Session) sdp.Rewrite {
	relay := relay4
	if strings.Contains(name, "ipv6-bridge") {
		relay = relay6
	}
	r := sdp.Rewrite{Origin: relay, RemoveICE: strings.HasSuffix(name, "-noice")}
	for i, m := range s.Media {
		mr := sdp.MediaRewrite{}
		if !m.Rejected() {
			mr = sdp.MediaRewrite{Addr: relay, Port: 40000 + 2*i}
		}
		r.Media = append(r.Media, mr)
	}
	return r
}

// checkRewritten verifies the targeted fields of a rewritten session: ports
// and addresses as asked for, hold addresses kept, RTCP beside RTP, and no
// ICE left if removal was asked for.
func checkRewritten(before, after *sdp.Session, r sdp.Rewrite) error {
	if len(after.Media) != len(before.Media) {
		return fmt.Errorf("%d media sections, want %d", len(after.Media), len(before.Media))
	}
	for i := range after.Media {
		if err := checkMedia(&before.Media[i], &after.Media[i], r, i); err != nil {
			return fmt.Errorf("media %d: %w", i, err)
		}
	}
	return nil
}

func checkMedia(b, a *sdp.Media, r sdp.Rewrite, i int) error {
	var mr sdp.MediaRewrite
	if i < len(r.Media) && !b.Rejected() {
		mr = r.Media[i]
	}
	switch {
	case mr.Port != 0 && a.Port != mr.Port:
		return fmt.Errorf("port %d, want %d", a.Port, mr.Port)
	case mr.Port == 0 && a.Port != b.Port:
		return fmt.Errorf("port %d changed to %d", b.Port, a.Port)
	case a.PortCount != b.PortCount:
		return fmt.Errorf("port count %d changed to %d", b.PortCount, a.PortCount)
	case a.Direction != b.Direction:
		return fmt.Errorf("direction %v changed to %v", b.Direction, a.Direction)
	case r.RemoveICE && a.ICE:
		return fmt.Errorf("ICE left")
	}
	if !b.Rejected() {
		if err := checkAddress(b, a, mr); err != nil {
			return err
		}
	}
	if b.RTCP != nil && mr.Port != 0 && mr.RTCPPort == 0 &&
		a.RTCP.Port != mr.Port+1 && a.RTCP.Port != mr.Port {
		return fmt.Errorf("rtcp port %d beside rtp port %d", a.RTCP.Port, mr.Port)
	}
	return nil
}

// checkAddress verifies a stream's effective address: the new one if asked
// for, else (or if on hold) the one it had; a stream without c= gets one
// only if asked.
func checkAddress(b, a *sdp.Media, mr sdp.MediaRewrite) error {
	want := mr.Addr
	if !want.IsValid() || b.Connection.OnHold() {
		if b.Connection == nil {
			if a.Connection != nil {
				return fmt.Errorf("c= %v added", a.Connection.Addr)
			}
			return nil
		}
		want = b.Connection.Addr
	}
	if a.Connection == nil || a.Connection.Addr != want {
		return fmt.Errorf("connection %+v, want address %v", a.Connection, want)
	}
	return nil
}
