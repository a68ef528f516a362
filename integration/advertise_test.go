//go:build linux && integration

package integration

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// A router behind 1:1 NAT: each gate advertises a public address. Through
// ng the offer's SDP towards the callee carries gate-b's advertised
// address and the answer's towards the caller gate-a's, while the kernel
// relays media sent to the gates' local addresses (where the NAT delivers
// it) both ways, from the local addresses.
func TestNGWritesTheAdvertisedAddressMediaFlowsToTheLocalOne(t *testing.T) {
	lab := newLab(t)
	const pubA, pubB = "198.51.100.7", "203.0.113.9"
	cfg := ngConfig(lab, t.TempDir())
	for gate, pub := range map[string]string{`"external", address = "` + lab.RouterExtAddr.String() + `"`: pubA,
		`"internal", address = "` + lab.RouterIntAddr.String() + `"`: pubB} {
		if !strings.Contains(cfg, gate) {
			t.Fatalf("config lacks %s:\n%s", gate, cfg)
		}
		cfg = strings.Replace(cfg, gate, gate+`, advertise = "`+pub+`"`, 1)
	}
	d := startDaemon(t, lab, cfg)
	a := newPeer(t, lab.Caller, lab.CallerAddr, 4000)
	b := newPeer(t, lab.Callee, lab.CalleeAddr, 5000)
	sdpOf := func(addr netip.AddrPort) string {
		return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio %[2]d RTP/AVP 0\r\n", addr.Addr(), addr.Port())
	}
	offer := ngCall(t, lab, "9_1", map[string]any{"command": "offer", "call-id": "adv-1", "from-tag": "alice",
		"sdp": sdpOf(a.addr), "direction": []string{"external", "internal"}, "flags": []string{"trust-address"}})
	portB := relayPort(t, "offer", offer, pubB)
	answer := ngCall(t, lab, "9_2", map[string]any{"command": "answer", "call-id": "adv-1", "from-tag": "alice",
		"to-tag": "bob", "sdp": sdpOf(b.addr), "flags": []string{"trust-address"}})
	portA := relayPort(t, "answer", answer, pubA)
	gateA, gateB := netip.AddrPortFrom(lab.RouterExtAddr, portA), netip.AddrPortFrom(lab.RouterIntAddr, portB)
	a.send(t, gateA, 20, false)
	expect(t, "callee RTP", b.rtpR, gateB, 20)
	b.send(t, gateB, 20, false)
	expect(t, "caller RTP", a.rtpR, gateA, 20)
	if del := ngCall(t, lab, "9_3", map[string]any{"command": "delete", "call-id": "adv-1", "from-tag": "alice"}); del["result"] != "ok" {
		t.Fatalf("delete: %v", del)
	}
	expectNoRelayState(t, d, lab)
}

var mAudio = regexp.MustCompile(`m=audio (\d+) `)

// relayPort checks that an ng reply's SDP carries addr in c= and returns
// its audio port.
func relayPort(t *testing.T, what string, reply map[string]any, addr string) uint16 {
	t.Helper()
	sdp, _ := reply["sdp"].(string)
	m := mAudio.FindStringSubmatch(sdp)
	if reply["result"] != "ok" || !strings.Contains(sdp, "c=IN IP4 "+addr+"\r\n") || m == nil {
		t.Fatalf("%s: %v; want an ok SDP with c=IN IP4 %s", what, reply, addr)
	}
	p, _ := strconv.Atoi(m[1])
	return uint16(p)
}
