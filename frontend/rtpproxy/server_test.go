package rtpproxy

import (
	"context"
	"fmt"
	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// moreBoards adds to switchboardtest's "edge" an IPv6 switchboard whose
// gates are named after the networks too, and one whose gate names mean
// nothing to rtpproxy.
const moreBoards = `
[[switchboard]]
name = "edge6"
gate-a = { name = "external", address = "2001:db8:a::1", ports = "30000-30009" }
gate-b = { name = "internal", address = "2001:db8:b::1", ports = "30000-30009" }
[[switchboard]]
name = "lan"
gate-a = { name = "left", address = "198.51.100.1", ports = "30000-30009" }
gate-b = { name = "right", address = "203.0.113.1", ports = "30000-30009" }
`

// rig is a Server over a Manager over the in-memory dataplane, serving a
// real socket.
type rig struct {
	t    *testing.T
	cfg  *switchboard.Config
	def  string
	mgr  *switchboard.Manager
	mem  *relaytest.Memory
	srv  *Server
	sock *Socket
	// cookies numbers the UDP commands, as Kamailio's "pid_seq" cookies.
	cookies int
}

// newRig serves spec with def as the default switchboard.
func newRig(t *testing.T, spec, def string) *rig {
	t.Helper()
	r := &rig{t: t, cfg: switchboardtest.Config(t, "30000-30009", moreBoards), def: def, mem: relaytest.NewMemory()}
	r.startManager()
	r.serve(spec)
	return r
}

// startManager starts a Manager on the rig's state directory and
// dataplane, as the daemon does after a restart.
func (r *rig) startManager() {
	r.t.Helper()
	r.mgr = switchboard.NewManager(r.cfg, r.mem, switchboard.Options{PickPort: switchboardtest.InOrder})
	if err := r.mgr.Start(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	mgr := r.mgr
	r.t.Cleanup(func() { mgr.Close() })
}

// serve starts a Server on a socket of spec ("udp:127.0.0.1:0" or "unix").
func (r *rig) serve(spec string) {
	r.t.Helper()
	if spec == "unix" {
		spec = "unix:" + filepath.Join(r.t.TempDir(), "run", "rtpproxy.sock")
	}
	sock, err := Listen(spec, SocketOptions{})
	if err != nil {
		r.t.Fatal(err)
	}
	r.sock = sock
	c := calls.New(r.mgr, sdprelay.New(r.mgr), r.cfg.Switchboards, r.def)
	r.srv = New(c, r.cfg.Switchboards, nil)
	ends := r.mgr.Subscribe() // as the daemon: before Restore
	c.Restore()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	srv := r.srv // a restart test serves again, replacing r.srv
	go func() { done <- srv.Run(ctx, sock) }()
	go func() { done <- ends.Each(ctx, c.SessionEnded) }()
	r.t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				r.t.Errorf("Run: %v", err)
			}
		}
		ends.Close()
	})
}

// udp sends one datagram "cookie command" and returns the reply without
// the cookie and newline.
func (r *rig) udp(cookie, command string) string {
	r.t.Helper()
	c, err := net.Dial("udp", r.sock.Addr().String())
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	return r.exchange(c, cookie+" "+command, cookie+" ")
}

func (r *rig) exchange(c net.Conn, send, prefix string) string {
	r.t.Helper()
	if _, err := c.Write([]byte(send)); err != nil {
		r.t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		r.t.Fatalf("%q: %v", send, err)
	}
	reply, ok := strings.CutPrefix(string(buf[:n]), prefix)
	if !ok || !strings.HasSuffix(reply, "\n") {
		r.t.Fatalf("%q: reply %q, want %q…\\n", send, buf[:n], prefix)
	}
	return strings.TrimSuffix(reply, "\n")
}

// cmd sends a command with a fresh cookie (UDP) or on a fresh connection
// without a newline, as Kamailio does (unix).
func (r *rig) cmd(command string) string {
	r.t.Helper()
	if _, ok := r.sock.Addr().(*net.UnixAddr); ok {
		c, err := net.Dial("unix", r.sock.Addr().String())
		if err != nil {
			r.t.Fatal(err)
		}
		defer c.Close()
		return r.exchange(c, command, "")
	}
	r.cookies++
	return r.udp(fmt.Sprintf("%d_%d", 4242, r.cookies), command)
}

func (r *rig) expect(command, want string) {
	r.t.Helper()
	if got := r.cmd(command); got != want {
		r.t.Fatalf("%s → %q, want %q", command, got, want)
	}
}

// only returns the one session there must be.
func (r *rig) only() *switchboard.Session {
	r.t.Helper()
	list := r.mgr.List()
	if len(list) != 1 {
		r.t.Fatalf("%d sessions, want 1", len(list))
	}
	return list[0]
}

func (r *rig) legs() []relay.Leg {
	r.t.Helper()
	legs, err := r.mem.Legs(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return legs
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestHandshakeAnswersKamailiosProbes(t *testing.T) {
	for _, spec := range []string{"udp:127.0.0.1:0", "unix"} {
		t.Run(spec, func(t *testing.T) {
			r := newRig(t, spec, "edge")
			r.expect("V", "20040107")
			r.expect("VF 20050322", "1") // required by Kamailio
			r.expect("VF 20071116", "0") // re-packetization
			r.expect("VF 20081102", "1") // codecs in U/L
			r.expect("VF 20081224", "1") // timeout notifications
			r.expect("VF 19990101", "0")
		})
	}
}

const call = "1-4242@192.0.2.10"

// The labels the call layer records a stream in, and its sides.
const (
	labelCall = "call-id"
	labelTo   = "answerer-tag"
	labelSide = "offerer-side"
	sideA     = switchboard.SideA
	sideB     = switchboard.SideB
)

type side = switchboard.Side

// The call of the integration test: offer from the caller (external),
// answer from the callee (internal), hold and unhold re-INVITEs, BYE.
func TestOfferAnswerHoldAndByeDriveOneSession(t *testing.T) {
	for _, spec := range []string{"udp:127.0.0.1:0", "unix"} {
		t.Run(spec, func(t *testing.T) {
			r := newRig(t, spec, "edge")
			r.expect("UEIc8,101 "+call+" 192.0.2.10 6000 alice;1", "30000 10.0.0.1")
			s := r.only()
			if s.Switchboard != "edge" || s.State != switchboard.Ringing || s.A.Signalled.RTP != ap("192.0.2.10:6000") || s.B.Signalled.RTP.IsValid() {
				t.Fatalf("after the offer: %+v; want ringing on edge, a-side the caller, b-side unknown", s)
			}
			if n := len(r.legs()); n != 4 {
				t.Fatalf("%d legs, want 4", n)
			}
			r.expect("LIE "+call+" 10.0.0.10 6000 alice;1 bob;1", "30000 192.0.2.1")
			s = r.only()
			if s.State != switchboard.Active || s.B.Signalled.RTP != ap("10.0.0.10:6000") || s.Labels[labelTo] != "bob" {
				t.Fatalf("after the answer: %+v; want active, b-side the callee, to-tag bob", s)
			}
			// Hold (c=0.0.0.0 with the r flag) keeps the caller's address, marked held.
			r.expect("UEIc8,101 "+call+" 0.0.0.0 6000 alice;1 bob;1", "30000 10.0.0.1")
			if a := r.only().A.Signalled; a.RTP != ap("192.0.2.10:6000") || !a.Hold {
				t.Fatalf("on hold the caller is %+v, want 192.0.2.10:6000 held", a)
			}
			r.expect("LIE "+call+" 10.0.0.10 6000 alice;1 bob;1", "30000 192.0.2.1")
			r.expect("UEIc8,101 "+call+" 192.0.2.10 6000 alice;1 bob;1", "30000 10.0.0.1")
			if a := r.only().A.Signalled; a.Hold {
				t.Fatalf("after unhold the caller is %+v, want not held", a)
			}
			// The callee's own re-INVITE names it first; its answer comes from the caller.
			r.expect("UIE "+call+" 10.0.0.11 7000 bob;1 alice;1", "30000 192.0.2.1")
			r.expect("LEI "+call+" 192.0.2.10 6000 bob;1 alice;1", "30000 10.0.0.1")
			if s := r.only(); s.B.Signalled.RTP != ap("10.0.0.11:7000") || s.A.Signalled.RTP != ap("192.0.2.10:6000") {
				t.Fatalf("after the callee's re-INVITE: a %s b %s", s.A.Signalled.RTP, s.B.Signalled.RTP)
			}
			r.expect("D "+call+" bob alice", "0") // BYE from the callee
			if n := len(r.mgr.List()); n != 0 {
				t.Fatalf("%d sessions after D, want 0", n)
			}
			if n := len(r.legs()); n != 0 {
				t.Fatalf("%d legs after D, want 0", n)
			}
			r.expect("D "+call+" alice bob", "E50")
		})
	}
}

func TestBridgeModifiersSelectTheGates(t *testing.T) {
	for _, tc := range []struct {
		name, mods, def  string
		switchboard      string
		creator          side
		reply            string
		refused          bool
		addr, otherParty string
	}{
		{name: "EI: an offer from external enters gate-a and is sent to gate-b's network", mods: "EI", def: "edge",
			switchboard: "edge", creator: sideA, reply: "30000 10.0.0.1"},
		{name: "IE: an offer from internal enters gate-b", mods: "IE", def: "edge",
			switchboard: "edge", creator: sideB, reply: "30000 192.0.2.1"},
		{name: "E alone means EI", mods: "E", def: "edge", switchboard: "edge", creator: sideA, reply: "30000 10.0.0.1"},
		{name: "no letters mean an offer from external", mods: "", def: "edge", switchboard: "edge", creator: sideA, reply: "30000 10.0.0.1"},
		{name: "named gates win over a default switchboard without them", mods: "IE", def: "lan",
			switchboard: "edge", creator: sideB, reply: "30000 192.0.2.1"},
		{name: "II cannot bridge one network to itself", mods: "II", def: "edge", refused: true},
		{name: "EE cannot either", mods: "ee", def: "lan", refused: true},
		{name: "6 picks the IPv6 switchboard", mods: "IE6", def: "edge", switchboard: "edge6", creator: sideB,
			reply: "30000 2001:db8:a::1 6", addr: "2001:db8:b::10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, "udp:127.0.0.1:0", tc.def)
			addr := tc.addr
			if addr == "" {
				addr = "192.0.2.10"
			}
			got := r.cmd("U" + tc.mods + " " + call + " " + addr + " 6000 alice;1")
			if tc.refused {
				if got != "E36" || len(r.mgr.List()) != 0 {
					t.Fatalf("reply %q with %d sessions, want E36 and none", got, len(r.mgr.List()))
				}
				return
			}
			if got != tc.reply {
				t.Fatalf("reply %q, want %q", got, tc.reply)
			}
			s := r.only()
			peer := s.A.Signalled.RTP
			if tc.creator == sideB {
				peer = s.B.Signalled.RTP
			}
			if s.Switchboard != tc.switchboard || s.Labels[labelSide] != string(tc.creator) || peer.Addr().String() != addr {
				t.Fatalf("session on %s, creator side %s with %s; want %s, %s with %s",
					s.Switchboard, s.Labels[labelSide], peer, tc.switchboard, tc.creator, addr)
			}
		})
	}
}

func TestIPv6CallAnswersWithTheIPv6Flag(t *testing.T) {
	r := newRig(t, "udp:127.0.0.1:0", "edge")
	r.expect("UEI6c8 "+call+" 2001:db8:a::10 6000 alice;1", "30000 2001:db8:b::1 6")
	r.expect("LIE6 "+call+" 2001:db8:b::10 6000 alice;1 bob;1", "30000 2001:db8:a::1 6")
	if s := r.only(); s.Switchboard != "edge6" || s.B.Signalled.RTP != ap("[2001:db8:b::10]:6000") {
		t.Fatalf("session %+v, want edge6 with the callee at [2001:db8:b::10]:6000", s)
	}
	// An IPv4 answer to an IPv6 stream is refused and changes nothing.
	r.expect("LIE "+call+" 10.0.0.10 6000 alice;1 bob;1", "E37")
	if s := r.only(); s.B.Signalled.RTP != ap("[2001:db8:b::10]:6000") {
		t.Fatalf("a refused answer changed the callee to %s", s.B.Signalled.RTP)
	}
}

func TestEveryStreamIsASessionAndDeleteWithoutMedianumEndsThemAll(t *testing.T) {
	r := newRig(t, "udp:127.0.0.1:0", "edge")
	r.expect("UEI "+call+" 192.0.2.10 6000 alice;1", "30000 10.0.0.1")
	r.expect("UEI "+call+" 192.0.2.10 6002 alice;2", "30002 10.0.0.1")
	r.expect("UEI other-call 192.0.2.10 6004 alice;1", "30004 10.0.0.1")
	r.expect("LIE "+call+" 10.0.0.10 5002 alice;2 bob;2", "30002 192.0.2.1")
	if n := len(r.mgr.List()); n != 3 {
		t.Fatalf("%d sessions, want 3", n)
	}
	r.expect("D "+call+" alice;2", "0")
	if n := len(r.mgr.List()); n != 2 {
		t.Fatalf("%d sessions after deleting stream 2, want 2", n)
	}
	r.expect("D "+call+" alice bob", "0")
	if list := r.mgr.List(); len(list) != 1 || list[0].Labels[labelCall] != "other-call" {
		t.Fatalf("sessions after D: %v, want only other-call's", list)
	}
}

func TestLookupOfAnUnknownStreamAnswersPortZero(t *testing.T) {
	r := newRig(t, "udp:127.0.0.1:0", "edge")
	r.expect("LIE "+call+" 10.0.0.10 6000 alice;1 bob;1", "0")
	r.expect("Q "+call+" alice;1 bob", "E50")
	if n := len(r.mgr.List()); n != 0 {
		t.Fatalf("%d sessions, want 0", n)
	}
}

// A stream the manager expired (ringing timeout) is forgotten: a lookup
// answers 0 and a new offer allocates again.
func TestStreamsExpiredBehindTheFrontEndAreAllocatedAnew(t *testing.T) {
	r := newRig(t, "udp:127.0.0.1:0", "edge")
	r.expect("UEI "+call+" 192.0.2.10 6000 alice;1", "30000 10.0.0.1")
	if err := r.mgr.Delete(context.Background(), r.only().ID); err != nil {
		t.Fatal(err)
	}
	r.expect("LIE "+call+" 10.0.0.10 6000 alice;1 bob;1", "0")
	if got := r.cmd("UEI " + call + " 192.0.2.10 6000 alice;1"); !strings.HasSuffix(got, " 10.0.0.1") {
		t.Fatalf("offer after expiry: %q, want gate-b", got)
	}
	r.only()
}

// A call whose every stream ended behind the front end leaves its table.
func TestACallWhoseStreamsEndedLeavesTheTable(t *testing.T) {
	r := newRig(t, "udp:127.0.0.1:0", "edge")
	r.expect("UEI "+call+" 192.0.2.10 6000 alice;1", "30000 10.0.0.1")
	r.expect("UEI "+call+" 192.0.2.10 6002 alice;2", "30002 10.0.0.1")
	count := func() (n, streams int) { return r.srv.calls.CountOf(calls.RTPProxy) }
	for i, s := range r.mgr.List() {
		if err := r.mgr.Delete(context.Background(), s.ID); err != nil {
			t.Fatal(err)
		}
		wantCalls, wantStreams := 1, 1
		if i == 1 {
			wantCalls, wantStreams = 0, 0
		}
		deadline := time.Now().Add(time.Second)
		for n, st := count(); n != wantCalls || st != wantStreams; n, st = count() {
			if time.Now().After(deadline) {
				t.Fatalf("after %d ended streams: %d calls, %d streams; want %d, %d", i+1, n, st, wantCalls, wantStreams)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// Without switchboards whose gates are named external and internal, the
// default switchboard serves with gate-a external.
func TestDefaultSwitchboardTakesGateAAsExternal(t *testing.T) {
	cfg := switchboardtest.Config(t, "30000-30009", "")
	// Gate names that mean nothing to rtpproxy.
	cfg.Switchboards[0].A.Name, cfg.Switchboards[0].B.Name = "left", "right"
	mgr, _ := switchboardtest.Manager(t, cfg)
	for _, tc := range []struct{ def, mods, want string }{
		{"edge", "IE", "30000 192.0.2.1"},
		{"edge", "EI", "30002 10.0.0.1"},
		{"edge", "", "30004 10.0.0.1"},
		{"edge", "II", "E36"},
		{"edge", "EI6", "E36"},
		{"", "EI", "E36"},
	} {
		srv := New(calls.New(mgr, sdprelay.New(mgr), cfg.Switchboards, tc.def), cfg.Switchboards, nil)
		line := fmt.Sprintf("U%s call-%s%s 192.0.2.10 6000 alice;1", tc.mods, tc.def, tc.mods)
		if strings.Contains(tc.mods, "6") {
			line = strings.Replace(line, "192.0.2.10", "2001:db8::10", 1)
		}
		if got := srv.execute(context.Background(), line); got != tc.want {
			t.Errorf("default %q, %q → %q, want %q", tc.def, line, got, tc.want)
		}
	}
}

func TestQueryReportsPacketsPerDirectionFromTheKernelCounters(t *testing.T) {
	r := newRig(t, "udp:127.0.0.1:0", "edge")
	r.expect("UEI "+call+" 192.0.2.10 6000 alice;1", "30000 10.0.0.1")
	r.expect("LIE "+call+" 10.0.0.10 6000 alice;1 bob;1", "30000 192.0.2.1")
	s := r.only()
	var flows []relay.Flow
	for _, l := range r.legs() {
		switch l.Gate {
		case s.GateA: // a-rtp: sent by the caller
			flows = append(flows, relay.Flow{Mark: l.Mark, Packets: 236, Bytes: 40592})
		case s.GateB: // b-rtp: sent by the callee
			flows = append(flows, relay.Flow{Mark: l.Mark, Packets: 230, Bytes: 39560})
		default:
			flows = append(flows, relay.Flow{Mark: l.Mark, Packets: 5, Bytes: 400})
		}
	}
	r.mem.SetFlows(flows...)
	r.expect("Q "+call+" alice;1 bob", "60 236 230 466 0")
	r.expect("Q "+call+" bob;1 alice", "60 230 236 466 0") // as Kamailio asks from a reply
	r.expect("Qv "+call+" alice;1 bob ttl npkts_ino", "ttl=60 npkts_ino=230")
	r.expect("Q "+call+" alice;1 bob rtpa_jmax", "E62")
	r.expect("I", "sessions created: 1\nactive sessions: 1\nactive streams: 2")
}

func TestRetransmittedOfferIsAnsweredFromTheCacheAndRunsOnce(t *testing.T) {
	r := newRig(t, "udp:127.0.0.1:0", "edge")
	c, err := net.Dial("udp", r.sock.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	offer := "7411_1 UEI " + call + " 192.0.2.10 6000 alice;1"
	first := r.exchange(c, offer, "7411_1 ")
	applied := r.mem.Applied()
	second := r.exchange(c, offer, "7411_1 ")
	if first != "30000 10.0.0.1" || second != first {
		t.Fatalf("replies %q and %q, want the same gate twice", first, second)
	}
	if r.mem.Applied() != applied || len(r.mgr.List()) != 1 {
		t.Fatalf("the retransmission ran again: %d kernel batches, %d sessions", r.mem.Applied()-applied, len(r.mgr.List()))
	}
	// A new cookie is a new command: the same offer again updates the same session.
	if got := r.exchange(c, "7411_2 UEI "+call+" 192.0.2.10 6000 alice;1", "7411_2 "); got != first || len(r.mgr.List()) != 1 {
		t.Fatalf("repeated offer: %q with %d sessions", got, len(r.mgr.List()))
	}
}

func TestMalformedCommandsAnswerErrorsAndChangeNothing(t *testing.T) {
	r := newRig(t, "udp:127.0.0.1:0", "edge")
	r.expect("UEI "+call+" 192.0.2.10 6000 alice;1", "30000 10.0.0.1")
	before, legs := r.only(), r.legs()
	for _, tc := range []struct{ command, want string }{
		{"", "E5"},
		{"X", "E0"},
		{"U " + call, "E1"},
		{"Vx", "E2"},
		{"UEIE " + call + " 192.0.2.10 6000 alice;1", "E11"},
		{"U% " + call + " 192.0.2.10 6000 alice;1", "E35"},
		{"UEI " + call + " 192.0.2.10 99999 alice;1", "E37"},
		{"UEI " + call + " 192.0.2.300 6000 alice;1", "E37"},
		{"UEI6 " + call + " 192.0.2.11 6000 alice;1", "E37"},
		{"LIE " + call + " not-an-ip 6000 alice;1 bob;1", "E37"},
		{"Dz " + call + " alice", "E8"},
		{"D " + call + " mallory", "E50"},
		{"Qz " + call + " alice;1", "E19"},
		{"R " + call + " alice", "E0"},
	} {
		if got := r.cmd(tc.command); got != tc.want {
			t.Errorf("%q → %q, want %q", tc.command, got, tc.want)
		}
	}
	after := r.only()
	if after.ID != before.ID || after.A != before.A || after.B != before.B || after.State != before.State {
		t.Errorf("session changed:\n%+v\n%+v", before, after)
	}
	if n := len(r.legs()); n != len(legs) {
		t.Errorf("%d legs, want %d", n, len(legs))
	}
}

func TestPortExhaustionAnswersE71AndKeepsTheOtherCalls(t *testing.T) {
	r := newRig(t, "udp:127.0.0.1:0", "edge")
	for i := range 5 { // 30000-30009 holds five port pairs
		r.expect(fmt.Sprintf("UEI call-%d 192.0.2.10 6000 alice;1", i), fmt.Sprintf("%d 10.0.0.1", 30000+2*i))
	}
	r.expect("UEI call-5 192.0.2.10 6000 alice;1", "E71")
	if n := len(r.mgr.List()); n != 5 {
		t.Fatalf("%d sessions, want 5", n)
	}
}

func TestRelayFailureAnswersE72AndAllocatesNothing(t *testing.T) {
	r := newRig(t, "udp:127.0.0.1:0", "edge")
	r.mem.FailNext(fmt.Errorf("netlink: %w", context.DeadlineExceeded))
	r.expect("UEI "+call+" 192.0.2.10 6000 alice;1", "E72")
	if n := len(r.mgr.List()); n != 0 {
		t.Fatalf("%d sessions, want 0", n)
	}
	if got := r.cmd("UEI " + call + " 192.0.2.10 6000 alice;1"); !strings.HasSuffix(got, " 10.0.0.1") {
		t.Fatalf("offer after the failure: %q, want gate-b", got)
	}
}

// After a restart (new manager from the journal, new server) the streams
// are found again through their labels.
func TestRestartRestoresStreamsFromLabels(t *testing.T) {
	r := newRig(t, "udp:127.0.0.1:0", "edge")
	r.expect("UEI "+call+" 192.0.2.10 6000 alice;1", "30000 10.0.0.1")
	r.expect("UIE "+call+" 10.0.0.10 6002 bob;2 alice;2", "30002 192.0.2.1")
	r.expect("UEI plain 192.0.2.10 6004 carol", "30004 10.0.0.1") // no medianum
	r.mgr.Close()
	r.startManager()
	r.serve("udp:127.0.0.1:0")
	r.expect("LIE "+call+" 10.0.0.10 6000 alice;1 bob;1", "30000 192.0.2.1")
	r.expect("LEI "+call+" 192.0.2.10 6002 bob;2 alice;2", "30002 10.0.0.1")
	r.expect("L plain 10.0.0.10 6004 carol dave", "30004 192.0.2.1")
	r.expect("I", "sessions created: 0\nactive sessions: 3\nactive streams: 6")
	r.expect("D "+call+" alice", "0")
	r.expect("D plain dave", "0") // the answerer's tag, learned from L, names the stream too
	if n := len(r.mgr.List()); n != 0 {
		t.Fatalf("%d sessions left, want 0", n)
	}
}

func TestUnixStreamTakesNewlineTerminatedCommandsOnOneConnection(t *testing.T) {
	r := newRig(t, "unix", "edge")
	c, err := net.Dial("unix", r.sock.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("V\r\nVF 20050322\n\nUEI " + call + " 192.0.2.10 6000 alice;1\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	want := "20040107\n1\n30000 10.0.0.1\n"
	var got []byte
	buf := make([]byte, 512)
	for len(got) < len(want) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != want {
		t.Fatalf("replies %q, want %q", got, want)
	}
}

func TestListenRejectsUnknownSocketForms(t *testing.T) {
	for _, spec := range []string{"", "udp", "tcp:127.0.0.1:1", "unix:", "127.0.0.1:22223"} {
		if _, err := Listen(spec, SocketOptions{}); err == nil || !strings.Contains(err.Error(), `want "udp:HOST:PORT" or "unix:PATH"`) {
			t.Errorf("Listen(%q) = %v, want an error naming the forms", spec, err)
		}
	}
}

// A socket left behind by a killed daemon is replaced; a live one is not.
func TestListenReplacesAStaleUnixSocketOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rtpproxy.sock")
	live, err := Listen("unix:"+path, SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix:"+path, SocketOptions{}); err == nil || !strings.Contains(err.Error(), "another process listens") {
		t.Fatalf("second Listen on a live socket: %v", err)
	}
	ul := live.ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // as if killed: the file stays
	live.Close()
	again, err := Listen("unix:"+path, SocketOptions{})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	again.Close()
}

// FuzzDatagram runs datagrams through a server over the in-memory
// dataplane: every datagram with a cookie gets a reply carrying it, an
// error reply leaves the sessions and legs as they were, and the kernel
// holds exactly the legs of the sessions.
func FuzzDatagram(f *testing.F) {
	for i, l := range kamailioCommands {
		f.Add(fmt.Sprintf("4242_%d %s", i, l))
	}
	cfg := switchboardtest.Config(f, "30000-30009", moreBoards)
	mgr, mem := switchboardtest.Manager(f, cfg)
	srv := New(calls.New(mgr, sdprelay.New(mgr), cfg.Switchboards, "edge"), cfg.Switchboards, nil)
	cache := newReplyCache(time.Now, 0)
	from := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}
	f.Fuzz(func(t *testing.T, d string) {
		before := switchboardtest.Snapshot(t, mgr, mem)
		reply := srv.datagram(context.Background(), cache, from, []byte(d))
		if w := fields(d); len(w) > 0 && strings.HasPrefix(string(reply), w[0]+" E") {
			if after := switchboardtest.Snapshot(t, mgr, mem); after != before {
				t.Fatalf("%q answered %q changed the state:\nbefore:\n%s\nafter:\n%s", d, reply, before, after)
			}
		}
		switch w := fields(d); {
		case len(w) == 0 && reply != nil:
			t.Fatalf("%q has no cookie, yet got the reply %q", d, reply)
		case len(w) > 0 && (!strings.HasPrefix(string(reply), w[0]+" ") || !strings.HasSuffix(string(reply), "\n")):
			t.Fatalf("%q → %q: want the cookie, a reply and a newline", d, reply)
		}
		legs, _ := mem.Legs(context.Background())
		if n := len(mgr.List()); len(legs) != 4*n {
			t.Fatalf("%q: %d legs for %d sessions", d, len(legs), n)
		}
	})
}
