//go:build linux && integration

package integration

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/sdp"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

func offerSDP(addr netip.Addr, audio, video int) string {
	ip := "IP4"
	if addr.Is6() {
		ip = "IP6"
	}
	return fmt.Sprintf("v=0\r\no=alice 2890844526 2890844526 IN %[1]s %[2]s\r\ns=-\r\nc=IN %[1]s %[2]s\r\nt=0 0\r\n"+
		"m=audio %[3]d RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"+
		"m=video %[4]d RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n", ip, addr, audio, video)
}

// mediaAddr returns where the SDP asks stream i to be sent.
func mediaAddr(t *testing.T, body string, i int) netip.AddrPort {
	t.Helper()
	s, err := sdp.Parse([]byte(body))
	if err != nil {
		t.Fatalf("rewritten SDP does not parse: %v\n%s", err, body)
	}
	m := s.Media[i]
	return netip.AddrPortFrom(m.Connection.Addr, uint16(m.Port))
}

// An offer from the caller and the callee's answer allocate and complete
// one session per stream; RTP sent to the addresses in the rewritten SDPs
// crosses the kernel both ways, for audio and video.
func TestOfferAnswerFromSDPRelaysToTheSDPAddresses(t *testing.T) {
	lab := newLab(t)
	d := startDaemon(t, lab, labConfig(lab, t.TempDir(), ""))
	audioA, videoA := newPeer(t, lab.Caller, lab.CallerAddr, 4000), newPeer(t, lab.Caller, lab.CallerAddr, 4002)
	audioB, videoB := newPeer(t, lab.Callee, lab.CalleeAddr, 5000), newPeer(t, lab.Callee, lab.CalleeAddr, 5002)

	offer, err := d.api.AllocSDP(ctx(t), sdprelay.Request{Switchboard: "edge", From: switchboard.SideA,
		SDP: offerSDP(lab.CallerAddr, 4000, 4002), Ringing: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(offer.Sessions) != 2 || offer.Sessions[0] == "" || offer.Sessions[1] == "" {
		t.Fatalf("offer sessions %q, want two", offer.Sessions)
	}
	toB := []netip.AddrPort{mediaAddr(t, offer.SDP, 0), mediaAddr(t, offer.SDP, 1)}
	if toB[0].Addr() != lab.RouterIntAddr {
		t.Fatalf("offer forwarded to the callee points at %s, want gate-b %s:\n%s", toB[0], lab.RouterIntAddr, offer.SDP)
	}
	answer, err := d.api.UpdateSDP(ctx(t), sdprelay.Request{From: switchboard.SideB, Sessions: offer.Sessions,
		SDP: offerSDP(lab.CalleeAddr, 5000, 5002)})
	if err != nil {
		t.Fatal(err)
	}
	toA := []netip.AddrPort{mediaAddr(t, answer.SDP, 0), mediaAddr(t, answer.SDP, 1)}
	if toA[0].Addr() != lab.RouterExtAddr {
		t.Fatalf("answer forwarded to the caller points at %s, want gate-a %s:\n%s", toA[0], lab.RouterExtAddr, answer.SDP)
	}
	if _, err := d.api.AdjustTimeout(ctx(t), offer.Sessions[0], "active"); err != nil {
		t.Fatal(err)
	}
	audioA.send(t, toA[0], 10, true)
	videoA.send(t, toA[1], 10, false)
	audioB.send(t, toB[0], 10, true)
	videoB.send(t, toB[1], 10, false)
	expect(t, "callee audio", audioB.rtpR, toB[0], 10)
	expect(t, "callee audio RTCP", audioB.rtcpR, gateRTCP(toB[0]), 10)
	expect(t, "callee video", videoB.rtpR, toB[1], 10)
	expect(t, "caller audio", audioA.rtpR, toA[0], 10)
	expect(t, "caller audio RTCP", audioA.rtcpR, gateRTCP(toA[0]), 10)
	expect(t, "caller video", videoA.rtpR, toA[1], 10)

	// A re-INVITE that rejects the video stream releases its session and
	// keeps the audio ports.
	reinvite := fmt.Sprintf("v=0\r\no=alice 1 2 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\n", lab.CallerAddr)
	re, err := d.api.UpdateSDP(ctx(t), sdprelay.Request{From: switchboard.SideA, Sessions: offer.Sessions, SDP: reinvite})
	if err != nil {
		t.Fatal(err)
	}
	if re.Sessions[0] != offer.Sessions[0] || re.Sessions[1] != "" {
		t.Fatalf("re-INVITE sessions %q, want [%s \"\"]", re.Sessions, offer.Sessions[0])
	}
	if got := mediaAddr(t, re.SDP, 0); got != toB[0] {
		t.Errorf("re-INVITE moved the audio port: %s, want %s", got, toB[0])
	}
	if _, err := d.api.Show(ctx(t), offer.Sessions[1]); err == nil {
		t.Errorf("rejected video stream's session %s still exists", offer.Sessions[1])
	}
}
