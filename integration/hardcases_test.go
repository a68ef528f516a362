//go:build linux && integration

package integration

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/frontend/httpapi"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

func gateRTCP(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr(), ap.Port()+1) }

// Hard case 1: both peers public and symmetric; either side sends first;
// RTP and RTCP both ways, each arriving from the opposite gate.
func TestSymmetricPeersEitherSideFirst(t *testing.T) {
	lab := newLab(t)
	d := startDaemon(t, lab, labConfig(lab, t.TempDir(), ""))
	for _, tc := range []struct {
		name           string
		sb             string
		caller, callee netip.Addr
		calleeFirst    bool
	}{
		{"caller sends first over IPv4", "edge", lab.CallerAddr, lab.CalleeAddr, false},
		{"callee sends first over IPv4", "edge", lab.CallerAddr, lab.CalleeAddr, true},
		{"callee sends first over IPv6", "edge6", lab.CallerAddr6, lab.CalleeAddr6, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newPeer(t, lab.Caller, tc.caller, 4000)
			b := newPeer(t, lab.Callee, tc.callee, 5000)
			s, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: tc.sb, A: a.endpoint(), B: b.endpoint()})
			if err != nil {
				t.Fatal(err)
			}
			defer d.api.Delete(ctx(t), s.ID)
			if tc.calleeFirst {
				b.send(t, s.GateB, 20, true)
				expect(t, "caller RTP", a.rtpR, s.GateA, 20)
			}
			a.send(t, s.GateA, 20, true)
			expect(t, "callee RTP", b.rtpR, s.GateB, 20)
			expect(t, "callee RTCP", b.rtcpR, gateRTCP(s.GateB), 20)
			if !tc.calleeFirst {
				b.send(t, s.GateB, 20, true)
				expect(t, "caller RTP", a.rtpR, s.GateA, 20)
			}
			expect(t, "caller RTCP", a.rtcpR, gateRTCP(s.GateA), 20)
			det, err := d.api.Show(ctx(t), s.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range det.Legs {
				if age := time.Since(l.LastPacket); l.Packets != 20 || age < -time.Second || age > 3*time.Second {
					t.Errorf("leg %s: %d packets, the last %s ago; want 20, just now", l.Name, l.Packets, age.Round(time.Second))
				}
			}
		})
	}
}

// Hard case 2: the caller is behind NAT (its real source port differs from
// the SDP) and the callee sends first: its early media goes to the presumed
// address; once the caller's first packet is learned, every packet of both
// sides reaches the other and the callee's go to the real port only.
func TestNATedCallerWhileCalleeSendsFirst(t *testing.T) {
	lab := newLab(t)
	d := startDaemon(t, lab, labConfig(lab, t.TempDir(), ""))
	presumed := newPeer(t, lab.Caller, lab.CallerAddr, 4000) // what the SDP says
	real := newPeer(t, lab.Caller, lab.CallerAddr, 4100)     // where the NAT maps it
	b := newPeer(t, lab.Callee, lab.CalleeAddr, 5000)
	s, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge", A: presumed.endpoint(), B: b.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	b.send(t, s.GateB, 10, false)
	expect(t, "early media at the presumed address", presumed.rtpR, s.GateA, 10)

	real.send(t, s.GateA, 30, true)
	expect(t, "callee RTP from the NATed caller", b.rtpR, s.GateB, 30)
	expect(t, "callee RTCP from the NATed caller", b.rtcpR, gateRTCP(s.GateB), 30)

	waitLearned(t, d, s.ID, func(x *switchboard.Session) bool { return x.A.Learned.RTP == real.addr })
	presumed.rtpR.Reset()
	b.send(t, s.GateB, 20, false)
	expect(t, "caller's real port", real.rtpR, s.GateA, 20)
	expectNothing(t, "presumed address after learning", presumed.rtpR)
}

func waitLearned(t *testing.T, d *daemon, id string, ok func(*switchboard.Session) bool) *switchboard.Details {
	t.Helper()
	x, done := waitShow(t, d, id, func(x *switchboard.Details) bool { return ok(x.Session) })
	if !done {
		t.Fatalf("session did not learn in 3s: a=%+v b=%+v", x.A, x.B)
	}
	return x
}

// waitShow reads session id until ok accepts it, for up to 3 s, and
// returns the last reading and whether ok accepted it.
func waitShow(t *testing.T, d *daemon, id string, ok func(*switchboard.Details) bool) (*switchboard.Details, bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		x, err := d.api.Show(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(x) {
			return x, true
		}
		if time.Now().After(deadline) {
			return x, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Hard case 3: a re-INVITE moves the callee to a new port mid-call: media
// follows at once and nothing more goes to the old port. The move deletes
// the conntrack entries of the caller's legs, and with them the kernel's
// counters: the session keeps what they counted (the kernel's destroy
// events carry the final counters), also across a restart.
func TestReinviteMovesCallee(t *testing.T) {
	lab := newLab(t)
	d := startDaemon(t, lab, labConfig(lab, t.TempDir(), ""))
	a := newPeer(t, lab.Caller, lab.CallerAddr, 4000)
	old := newPeer(t, lab.Callee, lab.CalleeAddr, 5000)
	moved := newPeer(t, lab.Callee, lab.CalleeAddr, 5010)
	s, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge", A: a.endpoint(), B: old.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	a.send(t, s.GateA, 20, true)
	expect(t, "old callee address", old.rtpR, s.GateB, 20)
	expect(t, "old callee RTCP", old.rtcpR, gateRTCP(s.GateB), 20) // none in flight at the reset
	old.rtpR.Reset()
	old.rtcpR.Reset()
	ep := moved.endpoint()
	if _, err := d.api.Update(ctx(t), s.ID, switchboard.UpdateRequest{B: &ep}); err != nil {
		t.Fatal(err)
	}
	a.send(t, s.GateA, 20, true)
	expect(t, "moved callee RTP", moved.rtpR, s.GateB, 20)
	expect(t, "moved callee RTCP", moved.rtcpR, gateRTCP(s.GateB), 20)
	expectNothing(t, "old callee RTP", old.rtpR)
	expectNothing(t, "old callee RTCP", old.rtcpR)
	moved.send(t, s.GateB, 10, false)
	expect(t, "caller after the move", a.rtpR, s.GateA, 10)
	waitCounted(t, d, s.ID, 40, 1) // 20 before the move, ended; 20 after
	d.kill()
	d.start()
	waitCounted(t, d, s.ID, 40, 1)
}

// waitCounted waits until both caller legs (a-rtp, a-rtcp) of session id
// count packets over flows live conntrack entries each.
func waitCounted(t *testing.T, d *daemon, id string, packets uint64, flows int) {
	t.Helper()
	x, done := waitShow(t, d, id, func(x *switchboard.Details) bool {
		for _, l := range x.Legs {
			if (l.Name == "a-rtp" || l.Name == "a-rtcp") && (l.Packets != packets || l.Flows != flows || l.Bytes == 0) {
				return false
			}
		}
		return true
	})
	if !done {
		t.Fatalf("caller legs: %+v, want %d packets (and bytes) over %d flows each", x.Legs, packets, flows)
	}
}

// Hard case 4: delete stops media at once, both directions, RTP and RTCP,
// and leaves no element or relay flow in the kernel.
func TestDeleteStopsMediaAtOnce(t *testing.T) {
	lab, d, a, b, s := startCall(t)
	a.send(t, s.GateA, 10, true)
	b.send(t, s.GateB, 10, true)
	expect(t, "callee before delete", b.rtpR, s.GateB, 10)
	expect(t, "caller before delete", a.rtpR, s.GateA, 10)
	if len(relayFlows(t, lab)) == 0 {
		t.Fatal("conntrack shows no relay flow while media flows")
	}
	if err := d.api.Delete(ctx(t), s.ID); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*peer{a, b} {
		r.rtpR.Reset()
		r.rtcpR.Reset()
	}
	a.send(t, s.GateA, 10, true)
	b.send(t, s.GateB, 10, true)
	expectNothing(t, "callee RTP after delete", b.rtpR)
	expectNothing(t, "callee RTCP after delete", b.rtcpR)
	expectNothing(t, "caller RTP after delete", a.rtpR)
	expectNothing(t, "caller RTCP after delete", a.rtcpR)
	if flows := relayFlows(t, lab); len(flows) != 0 {
		t.Errorf("relay flows left after delete:\n%s", strings.Join(flows, "\n"))
	}
	if l := nftTable(t, lab); hasElements(l) {
		t.Errorf("elements left after delete:\n%s", l)
	}
}

// Hard case 5: RTP Bleed. Within the learning window only the first source
// is taken; after that, packets from any other source to the gate port are
// dropped and never reach the peer.
func TestRTPBleedStrangersAreDropped(t *testing.T) {
	lab := newLab(t)
	d := startDaemon(t, lab, labConfig(lab, t.TempDir(), ""))
	a := newPeer(t, lab.Caller, lab.CallerAddr, 4000)
	stranger := newPeer(t, lab.Caller, lab.CallerAddr, 4444)
	b := newPeer(t, lab.Callee, lab.CalleeAddr, 5000)
	s, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge", A: a.endpoint(), B: b.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	a.send(t, s.GateA, 10, false)
	expect(t, "callee from the caller", b.rtpR, s.GateB, 10)
	waitLearned(t, d, s.ID, func(x *switchboard.Session) bool { return x.A.Learned.RTP == a.addr })
	b.rtpR.Reset()
	stranger.send(t, s.GateA, 20, false)
	expectNothing(t, "callee from a stranger after learning", b.rtpR)
	b.send(t, s.GateB, 10, false)
	expect(t, "caller still gets the callee", a.rtpR, s.GateA, 10)
	expectNothing(t, "stranger gets nothing", stranger.rtpR)
	a.send(t, s.GateA, 10, false)
	expect(t, "caller still reaches the callee", b.rtpR, s.GateB, 10)
}

// Hard case 7: an unanswered session expires at the ringing timeout; one
// answered with adjust-timeout lives on.
func TestRingingTimeoutExpiresUnansweredSessions(t *testing.T) {
	lab := newLab(t)
	d := startDaemon(t, lab, labConfig(lab, t.TempDir(), `ringing-timeout = "1s"`))
	unanswered, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge", Ringing: true})
	if err != nil {
		t.Fatal(err)
	}
	answered, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge", Ringing: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.api.AdjustTimeout(ctx(t), answered.ID, switchboard.Active); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	var se *httpapi.StatusError
	if _, err := d.api.Show(ctx(t), unanswered.ID); !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("unanswered session after its ringing timeout: %v, want 404", err)
	}
	if _, err := d.api.Show(ctx(t), answered.ID); err != nil {
		t.Fatalf("answered session: %v", err)
	}
	l := nftTable(t, lab)
	for _, g := range []netip.AddrPort{unanswered.GateA, unanswered.GateB} {
		if strings.Contains(l, fmt.Sprintf("%s . %d :", g.Addr(), g.Port())) {
			t.Errorf("expired session's gate %s still in the table:\n%s", g, l)
		}
	}
	if !strings.Contains(l, fmt.Sprintf("%s . %d :", answered.GateA.Addr(), answered.GateA.Port())) {
		t.Errorf("answered session's gate %s missing from the table:\n%s", answered.GateA, l)
	}
}

// Hard case 9: when a gate's ports run out, alloc fails with a clear error
// and established calls are untouched.
func TestPortRangeExhausted(t *testing.T) {
	lab := newLab(t)
	cfg := strings.Replace(labConfig(lab, t.TempDir(), ""), `ports = "30000-30999" }
gate-b = { name = "internal"`, `ports = "30000-30003" }
gate-b = { name = "internal"`, 1)
	d := startDaemon(t, lab, cfg)
	a := newPeer(t, lab.Caller, lab.CallerAddr, 4000)
	b := newPeer(t, lab.Callee, lab.CalleeAddr, 5000)
	first, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge", A: a.endpoint(), B: b.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge"}); err != nil {
		t.Fatal(err)
	}
	before := nftTable(t, lab)
	_, err = d.api.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge"})
	var se *httpapi.StatusError
	if !errors.As(err, &se) || se.Code != 503 || !strings.Contains(se.Message, `switchboard "edge": gate-a`) || !strings.Contains(se.Message, "no free port pair") {
		t.Fatalf("third alloc on two port pairs: %v, want 503 naming the switchboard and gate", err)
	}
	if after := nftTable(t, lab); after != before {
		t.Errorf("failed alloc changed the table:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	a.send(t, first.GateA, 10, false)
	expect(t, "established call after exhaustion", b.rtpR, first.GateB, 10)
}
