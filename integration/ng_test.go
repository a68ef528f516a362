//go:build linux && integration

package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/zeebo/bencode"
)

// ngConfig is the lab configuration with the ng front end on the router's
// loopback, where examples/kamailio/rtpengine.cfg points.
func ngConfig(lab *netlab.Lab, stateDir string) string {
	return controlConfig(lab, stateDir, "ng = \"127.0.0.1:2223\"\n")
}

func rtpengineCfg(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../examples/kamailio/rtpengine.cfg")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Kamailio 5.6 with its stock rtpengine module, pointed at nftrtpproxy,
// relays a real SIP call through the kernel: SIPp plays a pcap, the callee
// echoes it, every packet crosses the relay both ways; the hold and unhold
// re-INVITEs keep the session and its ports; BYE removes everything.
func TestKamailioRtpengineModuleCallWithHold(t *testing.T) {
	needSIP(t)
	lab := newLab(t)
	d := startDaemon(t, lab, ngConfig(lab, t.TempDir()))
	startKamailio(t, lab, rtpengineCfg(t))
	expectCallWithHold(t, lab, d, sipCall(t, lab, d, "uac.xml", "uas.xml", true), true)
}

// A caller that cancels while the callee rings leaves nothing behind.
func TestKamailioRtpengineModuleCancelLeavesNothing(t *testing.T) {
	needSIP(t)
	lab := newLab(t)
	d := startDaemon(t, lab, ngConfig(lab, t.TempDir()))
	startKamailio(t, lab, rtpengineCfg(t))
	expectCancelled(t, lab, d, sipCall(t, lab, d, "uac_cancel.xml", "uas_cancel.xml", false))
}

// ngCall sends one ng request from the router's namespace and returns the
// reply dictionary.
func ngCall(t *testing.T, lab *netlab.Lab, cookie string, req map[string]any) map[string]any {
	t.Helper()
	body, err := bencode.EncodeBytes(req)
	if err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	if err := lab.Router.Do(func() error {
		var err error
		conn, err = net.Dial("udp", "127.0.0.1:2223")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(append([]byte(cookie+" "), body...)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 65535)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("ng %v: %v", req["command"], err)
	}
	reply, ok := bytes.CutPrefix(buf[:n], []byte(cookie+" "))
	if !ok {
		t.Fatalf("ng reply without the cookie %q: %q", cookie, buf[:n])
	}
	var out map[string]any
	if err := bencode.DecodeBytes(reply, &out); err != nil {
		t.Fatalf("ng reply %q: %v", reply, err)
	}
	return out
}

// A retransmitted offer (Kamailio resends the same cookie when a reply is
// late) is answered from the cache and never allocates twice.
func TestNGRetransmittedOfferAllocatesOnce(t *testing.T) {
	lab := newLab(t)
	d := startDaemon(t, lab, ngConfig(lab, t.TempDir()))
	offer := map[string]any{"command": "offer", "call-id": "retrans-1", "from-tag": "alice",
		"sdp":       fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", lab.CallerAddr),
		"direction": []string{"external", "internal"}, "flags": []string{"trust-address"}}
	first := ngCall(t, lab, "7_42", offer)
	second := ngCall(t, lab, "7_42", offer)
	if first["result"] != "ok" || fmt.Sprint(first) != fmt.Sprint(second) {
		t.Fatalf("offer and its retransmission: %v / %v; want the same ok reply", first, second)
	}
	list, err := d.api.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("%d sessions after a retransmitted offer, want 1", len(list))
	}
	del := ngCall(t, lab, "7_43", map[string]any{"command": "delete", "call-id": "retrans-1", "from-tag": "alice"})
	if del["result"] != "ok" {
		t.Fatalf("delete: %v", del)
	}
	expectNoRelayState(t, d, lab)
}

// A late offer (INVITE without SDP: the offer in the 200 OK, the answer in
// the ACK) relays the call's RTP both ways too.
func TestKamailioRtpengineModuleLateOffer(t *testing.T) {
	needSIP(t)
	lab := newLab(t)
	d := startDaemon(t, lab, ngConfig(lab, t.TempDir()))
	startKamailio(t, lab, rtpengineCfg(t))
	counters := sipCall(t, lab, d, "late_uac.xml", "late_uas.xml", true)
	// The caller starts sending as it sends the ACK that carries the answer,
	// and the callee echoes at once: the echo of the first packet can reach
	// the relay before Kamailio has passed the answer on, while the caller's
	// address is not known yet, and is dropped. Every later packet must pass.
	counters.expectRelayed(t, g711Packets-1)
	expectNoRelayState(t, d, lab)
}
