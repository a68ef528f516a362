//go:build linux && integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Learning through ng, in the kernel: only a call's own parties are learned
// (a stranger spraying the gate ranges while the call rings wins nothing),
// the kernel learns a NAT'd caller's source from its first packet (the
// callee's echo of it comes back), and it does so while the daemon is down.

// ngLeg is one side of an ng offer or answer.
type ngLeg struct {
	sdpAddr      netip.AddrPort // the media address in the SDP
	receivedFrom netip.Addr     // the SIP message's source
	flags        []string
}

// ngOffer sends an offer from the caller and returns the gate-b address
// the relay put in the SDP it passes on.
func ngOffer(t *testing.T, lab *netlab.Lab, callID string, caller ngLeg) netip.AddrPort {
	t.Helper()
	return ngLegSDP(t, lab, "offer", callID, caller)
}

// ngAnswer sends the callee's answer and returns the gate-a address the
// caller is told.
func ngAnswer(t *testing.T, lab *netlab.Lab, callID string, callee ngLeg) netip.AddrPort {
	t.Helper()
	return ngLegSDP(t, lab, "answer", callID, callee)
}

var sdpMedia = regexp.MustCompile(`c=IN IP4 ([0-9.]+)\r\n(?:.*\r\n)*?m=audio ([0-9]+) `)

func ngLegSDP(t *testing.T, lab *netlab.Lab, command, callID string, l ngLeg) netip.AddrPort {
	t.Helper()
	a := l.sdpAddr.Addr()
	req := map[string]any{"command": command, "call-id": callID, "from-tag": "alice",
		"sdp":           fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio %[2]d RTP/AVP 0\r\n", a, l.sdpAddr.Port()),
		"received-from": []string{"IP4", l.receivedFrom.String()}, "flags": l.flags}
	if command == "offer" {
		req["direction"] = []string{"external", "internal"}
	} else {
		req["to-tag"] = "bob"
	}
	r := ngCall(t, lab, strconv.Itoa(int(time.Now().UnixNano()%1e9)), req)
	sdp, _ := r["sdp"].(string)
	m := sdpMedia.FindStringSubmatch(sdp)
	if r["result"] != "ok" || m == nil {
		t.Fatalf("ng %s: %v", command, r)
	}
	port, _ := strconv.Atoi(m[2])
	return netip.AddrPortFrom(netip.MustParseAddr(m[1]), uint16(port))
}

// spray sends one packet from conn to every port of both gates' ranges,
// rounds times: what an attacker who does not know the ports does.
func spray(t *testing.T, conn *net.UDPConn, lab *netlab.Lab, rounds int) {
	t.Helper()
	pkt := make([]byte, 172)
	pkt[0] = 0x80
	for range rounds {
		for _, gate := range []netip.Addr{lab.RouterExtAddr, lab.RouterIntAddr} {
			for port := 30000; port <= 30999; port++ {
				if _, err := conn.WriteToUDPAddrPort(pkt, netip.AddrPortFrom(gate, uint16(port))); err != nil {
					t.Fatal(err)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// onlySession returns the daemon's one session.
func onlySession(t *testing.T, d *daemon) *switchboard.Session {
	t.Helper()
	list, err := d.api.List(ctx(t))
	if err != nil || len(list) != 1 {
		t.Fatalf("sessions: %v, %v; want one", list, err)
	}
	return list[0]
}

// A stranger on a network of its own sprays both gate ranges while a call
// rings, and again after the answer: it is never learned, receives nothing
// and injects nothing; both parties receive each other, every packet. Its
// packets are dropped and counted by the guard.
func TestStrangerSprayingWhileACallRingsWinsNothing(t *testing.T) {
	strangerAddr := netip.MustParseAddr("192.0.2.66")
	lab := newLabWith(t, netlab.Options{ExtraCallerAddrs: []netip.Addr{strangerAddr}})
	d := startDaemon(t, lab, ngConfig(lab, t.TempDir()))
	a := newPeer(t, lab.Caller, lab.CallerAddr, 4000)
	b := newPeer(t, lab.Callee, lab.CalleeAddr, 5000)
	stranger := newPeer(t, lab.Caller, strangerAddr, 7000)

	gateB := ngOffer(t, lab, "spray-1", ngLeg{a.addr, lab.CallerAddr, []string{"trust-address"}})
	spray(t, stranger.rtp, lab, 3)
	s := onlySession(t, d)
	if s.A.Learned.RTP.IsValid() || s.B.Learned.RTP.IsValid() {
		t.Fatalf("a ringing call learned a=%s b=%s from a stranger's spray", s.A.Learned.RTP, s.B.Learned.RTP)
	}
	gateA := ngAnswer(t, lab, "spray-1", ngLeg{b.addr, lab.CalleeAddr, []string{"trust-address"}})
	if gateA != s.GateA || gateB != s.GateB {
		t.Fatalf("SDP gates %s, %s; session's %s, %s", gateA, gateB, s.GateA, s.GateB)
	}
	spray(t, stranger.rtp, lab, 2)

	a.send(t, gateA, 200, false)
	expect(t, "callee from the caller", b.rtpR, gateB, 200)
	b.send(t, gateB, 200, false)
	expect(t, "caller from the callee", a.rtpR, gateA, 200)
	spray(t, stranger.rtp, lab, 2) // into the answered, locked call
	expectNothing(t, "stranger", stranger.rtpR)
	if n := a.rtpR.Count() + b.rtpR.Count(); n != 400 {
		t.Errorf("the parties received %d packets, want their 400: the stranger injected some", n)
	}
	x := waitLearned(t, d, s.ID, func(x *switchboard.Session) bool {
		return x.A.Learned.RTP == a.addr && x.B.Learned.RTP == b.addr
	})
	if x.A.Learned.RTP != a.addr {
		t.Errorf("learned %+v", x.Session)
	}
	if m := regexp.MustCompile(`@learnfrom4 counter packets ([0-9]+)`).FindStringSubmatch(nftTable(t, lab)); m == nil || m[1] == "0" {
		t.Errorf("the guard counted no stranger's packet: %v", m)
	}
}

// natCaller is a caller behind a masquerading NAT with random ports, in
// the caller's namespace: its sockets sit on a private address the relay
// cannot reach, and its packets leave from the caller's address on a port
// the NAT picks at random.
func natCaller(t *testing.T, lab *netlab.Lab) *peer {
	t.Helper()
	private := netip.MustParseAddr("172.16.33.10")
	c := context.Background()
	if out, err := lab.Caller.Run(c, "ip", "addr", "add", private.String()+"/32", "dev", "lo"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, cmd := range [][]string{
		{"add", "table", "ip", "nat"},
		{"add", "chain", "ip", "nat", "post", "{ type nat hook postrouting priority srcnat; }"},
		{"add", "rule", "ip", "nat", "post", "ip", "saddr", private.String(), "oifname", lab.CallerIf, "masquerade", "random"},
	} {
		if out, err := lab.Caller.Run(c, "nft", cmd...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	return newPeer(t, lab.Caller, private, 4000)
}

// echo sends every packet conn receives back to where it came from, at
// once, until the test ends.
func echo(t *testing.T, conn *net.UDPConn) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				_, _ = conn.WriteToUDPAddrPort(buf[:n], from)
			}
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
}

// echoCallee is a callee whose RTP socket echoes everything it receives.
func echoCallee(t *testing.T, lab *netlab.Lab) netip.AddrPort {
	t.Helper()
	addr := netip.AddrPortFrom(lab.CalleeAddr, 5000)
	conn, err := lab.Callee.ListenUDP(addr)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, conn)
	return addr
}

// A caller behind a random-port masquerade sends first; the callee echoes
// every packet at once. Every echo reaches the caller, the one of its very
// first packet too: the kernel learned the NAT's port from that packet
// before the echo came back (through the daemon, it came too late).
func TestNATedCallerReceivesTheEchoOfItsFirstPacket(t *testing.T) {
	lab := newLab(t)
	d := startDaemon(t, lab, ngConfig(lab, t.TempDir()))
	caller := natCaller(t, lab)
	callee := echoCallee(t, lab)
	gateB := ngOffer(t, lab, "nat-1", ngLeg{caller.addr, lab.CallerAddr, []string{"trust-address"}})
	gateA := ngAnswer(t, lab, "nat-1", ngLeg{callee, lab.CalleeAddr, []string{"trust-address"}})
	_ = gateB
	caller.send(t, gateA, 100, false)
	expect(t, "echoes at the NAT'd caller", caller.rtpR, gateA, 100)
	if seqs := caller.rtpR.Seqs(); len(seqs) == 0 || seqs[0] != 0 {
		t.Errorf("first echo received has sequence %v, want the first packet's", seqs[:min(len(seqs), 3)])
	}
	s := waitLearned(t, d, onlySession(t, d).ID, func(x *switchboard.Session) bool { return x.A.Learned.RTP.IsValid() })
	if got := s.A.Learned.RTP; got.Addr() != lab.CallerAddr || got.Port() == caller.addr.Port() {
		t.Errorf("learned %s, want the NAT's address %s on the port it picked", got, lab.CallerAddr)
	}
}

// A NAT'd call set up just before the daemon dies: its first packets
// arrive while no daemon runs. The kernel learns the caller, media flows
// both ways, and the restarted daemon records what the kernel learned.
func TestNATedCallIsLearnedWhileTheDaemonIsDown(t *testing.T) {
	lab := newLab(t)
	d := startDaemon(t, lab, ngConfig(lab, t.TempDir()))
	caller := natCaller(t, lab)
	callee := echoCallee(t, lab)
	ngOffer(t, lab, "nat-2", ngLeg{caller.addr, lab.CallerAddr, []string{"trust-address"}})
	gateA := ngAnswer(t, lab, "nat-2", ngLeg{callee, lab.CalleeAddr, []string{"trust-address"}})
	id := onlySession(t, d).ID
	d.kill()
	caller.send(t, gateA, 50, false)
	expect(t, "echoes at the NAT'd caller while the daemon is down", caller.rtpR, gateA, 50)
	if l := nftTable(t, lab); !strings.Contains(l, fmt.Sprintf(": %s . ", lab.CallerAddr)) {
		t.Errorf("the learned map holds no source of the caller's NAT:\n%s", l)
	}
	d.start()
	s := waitLearned(t, d, id, func(x *switchboard.Session) bool { return x.A.Learned.RTP.IsValid() })
	if got := s.A.Learned.RTP; got.Addr() != lab.CallerAddr {
		t.Errorf("after the restart the caller is learned as %s, want the NAT's address %s", got, lab.CallerAddr)
	}
	caller.rtpR.Reset()
	caller.send(t, gateA, 50, false)
	expect(t, "echoes at the NAT'd caller after the restart", caller.rtpR, gateA, 50)
}
