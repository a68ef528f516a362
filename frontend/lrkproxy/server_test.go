package lrkproxy

import (
	"bytes"
	"context"
	"fmt"
	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// harness is a server on loopback over a real Manager on the in-memory
// dataplane, and a client socket standing in for the module.
type harness struct {
	cfg *switchboard.Config
	m   *switchboard.Manager
	mem *relaytest.Memory
	cl  *net.UDPConn
	srv *Server
}

// newCalls returns the call table over m, restored as the daemon does.
func newCalls(m *switchboard.Manager, boards []*switchboard.Switchboard, def string) *calls.Calls {
	c := calls.New(m, sdprelay.New(m), boards, def)
	c.Restore()
	return c
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{cfg: switchboardtest.Config(t, "30000-30011", "")}
	h.m, h.mem = switchboardtest.Manager(t, h.cfg)
	h.serve(t)
	return h
}

// serve starts a server over h.m and points h.cl at it.
func (h *harness) serve(t *testing.T) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(pc, newCalls(h.m, h.cfg.Switchboards, "edge"), h.m, h.cfg.Switchboards, "edge", Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	if h.cl, err = net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.cl.Close() })
}

// send sends a datagram and returns the reply, or nil after a quiet second.
func (h *harness) send(t *testing.T, req string) []byte {
	t.Helper()
	if _, err := h.cl.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = h.cl.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 65535)
	n, err := h.cl.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// exchange sends a request the way the module does and fails unless the
// module would accept the reply.
func (h *harness) exchange(t *testing.T, req string) []byte {
	t.Helper()
	reply := h.send(t, req)
	if !moduleAccepts([]byte(req), reply) {
		t.Fatalf("the module would not accept the reply\n%q\nto\n%q", reply, req)
	}
	return reply
}

// moduleAccepts applies send_lrkp_command's test (Kamailio 5.6.3 and 5.7):
// the reply starts with the cookie and, by the letter after "<cookie> ",
// has exactly the length of a P, G, S or D reply (the C switch falls
// through its cases). more is the request's length after the cookie, as
// the module counts it for S and D (0 for P and G).
func moduleAccepts(req, reply []byte) bool {
	cookie, body, _ := bytes.Cut(req, []byte(" "))
	c := len(cookie) + 1
	more := 0
	if len(body) > 0 && (body[0] == 'S' || body[0] == 'D') {
		more = len(body)
	}
	if len(reply) <= c || !bytes.HasPrefix(reply, cookie) {
		return false
	}
	switch reply[c] {
	case 'P':
		if len(reply) == c+1+4+1 {
			return true
		}
		fallthrough
	case 'G':
		if len(reply) == c+1+nodeConfigSize+1 {
			return true
		}
		fallthrough
	case 'S', 'D':
		return len(reply) == more+c+2
	}
	return false
}

func (h *harness) sessions(t *testing.T) []*switchboard.Session {
	t.Helper()
	return h.m.List()
}

func (h *harness) legs(t *testing.T) []relay.Leg {
	t.Helper()
	l, err := h.mem.Legs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// set returns an S from the module for a call from caller (on the external
// side, flags "ei" and "ie") to callee, relayed on p (callee-facing, on
// 10.0.0.1) and p+2 (caller-facing, on 192.0.2.1).
func set(cookie, callID string, caller, callee string, p int) string {
	ci, cp, _ := strings.Cut(caller, ":")
	ei, epo, _ := strings.Cut(callee, ":")
	return fmt.Sprintf("%s S %s 10.0.0.1 192.0.2.1 %s %s %d %d %s 60 %s ", cookie, ci, ei, cp, p, p+2, epo, callID)
}

func del(cookie, callID string) string {
	return fmt.Sprintf("%s D 192.0.2.10 10.0.0.1 192.0.2.1 10.0.0.10 6000 30000 30002 6000 60 %s ", cookie, callID)
}

func TestPingIsAnsweredPONG(t *testing.T) {
	h := newHarness(t)
	if got := string(h.exchange(t, modulePing)); got != "4711_0 P PONG" {
		t.Errorf("reply %q, want %q", got, "4711_0 P PONG")
	}
}

func TestConfigDescribesTheSwitchboardInTheModulesStruct(t *testing.T) {
	h := newHarness(t)
	reply := h.exchange(t, moduleConfig)
	var c NodeConfig
	if err := c.UnmarshalBinary(bytes.TrimPrefix(reply, []byte("4711_1 G "))); err != nil {
		t.Fatal(err)
	}
	// 30000-30011: the counter's steps of 4 are 30000, 30004 and 30008.
	want := NodeConfig{StartPort: 30000, EndPort: 30008, CurrentPort: 30000, InternalIP: a("10.0.0.1"), ExternalIP: a("192.0.2.1")}
	if c != want {
		t.Errorf("config %+v, want %+v", c, want)
	}
}

func TestSetInstallsTheModulesPortsAndPeers(t *testing.T) {
	h := newHarness(t)
	if got := string(h.exchange(t, moduleSet)); got != moduleSet+"OK" {
		t.Fatalf("reply %q, want the request and OK", got)
	}
	ss := h.sessions(t)
	if len(ss) != 1 {
		t.Fatalf("%d sessions, want 1", len(ss))
	}
	s := ss[0]
	want := []string{"192.0.2.1:30002", "10.0.0.1:30000", "192.0.2.10:6000", "10.0.0.10:6000", "1-4711@192.0.2.10", "active"}
	got := []string{s.GateA.String(), s.GateB.String(), s.A.Signalled.RTP.String(), s.B.Signalled.RTP.String(), s.Labels["call-id"], string(s.State)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("gate-a, gate-b, a peer, b peer, call-id, state: %v\nwant %v", got, want)
	}
	if n := len(h.legs(t)); n != 4 {
		t.Errorf("%d legs, want 4", n)
	}
}

func TestACallerOnTheInternalSideIsPutOnGateB(t *testing.T) {
	h := newHarness(t)
	// Flags "ie" on the INVITE, "ei" on the answer: the caller sends to the
	// internal address, the callee to the external one.
	req := "9_1 S 10.0.0.10 192.0.2.1 10.0.0.1 192.0.2.10 7000 30004 30006 8000 60 out-1 "
	h.exchange(t, req)
	s := h.sessions(t)[0]
	if s.GateA.String() != "192.0.2.1:30004" || s.GateB.String() != "10.0.0.1:30006" ||
		s.A.Signalled.RTP.String() != "192.0.2.10:8000" || s.B.Signalled.RTP.String() != "10.0.0.10:7000" {
		t.Errorf("session %s %s a=%s b=%s; want the callee on gate-a, the caller on gate-b",
			s.GateA, s.GateB, s.A.Signalled.RTP, s.B.Signalled.RTP)
	}
}

func TestGameTheoryModeUsesOnePortOnBothGates(t *testing.T) {
	h := newHarness(t)
	h.exchange(t, "9_1 S 192.0.2.10 10.0.0.1 192.0.2.1 10.0.0.10 6000 30004 30004 6000 60 gt-1 ")
	s := h.sessions(t)[0]
	if s.GateA.Port() != 30004 || s.GateB.Port() != 30004 {
		t.Errorf("gates %s %s, want port 30004 on both", s.GateA, s.GateB)
	}
}

func TestSetAgainUpdatesThePeersAndNewPortsMoveTheCall(t *testing.T) {
	h := newHarness(t)
	h.exchange(t, set("1_0", "c1", "192.0.2.10:6000", "10.0.0.10:6000", 30000))
	first := h.sessions(t)[0]
	// A second answer (183, then 200) with the callee at a new port.
	h.exchange(t, set("1_1", "c1", "192.0.2.10:6000", "10.0.0.10:6100", 30000))
	ss := h.sessions(t)
	if len(ss) != 1 || ss[0].ID != first.ID || ss[0].B.Signalled.RTP.String() != "10.0.0.10:6100" {
		t.Fatalf("after S on the same ports: %d sessions, want the same one re-pointed to 10.0.0.10:6100", len(ss))
	}
	// A re-INVITE through Kamailio 5.6 gets the counter's next ports.
	h.exchange(t, set("1_2", "c1", "192.0.2.10:6000", "10.0.0.10:6100", 30004))
	ss = h.sessions(t)
	if len(ss) != 1 || ss[0].ID == first.ID || ss[0].GateB.Port() != 30004 {
		t.Fatalf("after S on new ports: sessions %v, want one new session on 30004", ss)
	}
	if n := len(h.legs(t)); n != 4 {
		t.Errorf("%d legs, want only the new session's 4", n)
	}
}

func TestARetransmittedSetIsAnsweredFromTheCacheAndRunsOnce(t *testing.T) {
	h := newHarness(t)
	first := h.exchange(t, moduleSet)
	applied := h.mem.Applied()
	if again := h.exchange(t, moduleSet); !bytes.Equal(first, again) {
		t.Errorf("retransmission answered %q, want %q", again, first)
	}
	if h.mem.Applied() != applied || len(h.sessions(t)) != 1 {
		t.Errorf("a retransmission changed the kernel (%d → %d batches) or the sessions (%d)", applied, h.mem.Applied(), len(h.sessions(t)))
	}
}

func TestDeleteEndsTheCallAndAnUnknownCallIsOK(t *testing.T) {
	h := newHarness(t)
	h.exchange(t, moduleSet)
	if got := string(h.exchange(t, moduleDelete)); got != moduleDelete+"OK" {
		t.Fatalf("reply %q, want the request and OK", got)
	}
	if n := len(h.sessions(t)); n != 0 {
		t.Errorf("%d sessions after D, want 0", n)
	}
	if n := len(h.legs(t)); n != 0 {
		t.Errorf("%d legs after D, want 0", n)
	}
	if got := string(h.exchange(t, del("4711_9", "never-seen"))); !strings.HasSuffix(got, "OK") {
		t.Errorf("D of an unknown call: %q, want OK", got)
	}
}

func TestBadRequestsAreRefusedAndChangeNothing(t *testing.T) {
	h := newHarness(t)
	h.exchange(t, set("0_0", "keep", "192.0.2.10:6000", "10.0.0.10:6000", 30008))
	before, applied := h.sessions(t), h.mem.Applied()
	for _, c := range []struct {
		name, req, want string // want: the reply's suffix, "" for no reply
	}{
		{"relay addresses that are not the gates", "1_1 S 192.0.2.10 10.0.0.2 192.0.2.1 10.0.0.10 6000 30000 30002 6000 60 x ", "ER"},
		{"both relay addresses on one gate", "1_2 S 192.0.2.10 10.0.0.1 10.0.0.1 10.0.0.10 6000 30000 30002 6000 60 x ", "ER"},
		{"no relay ports", "1_3 S 192.0.2.10 10.0.0.1 192.0.2.1 10.0.0.10 6000   6000 60 x ", "ER"},
		{"an odd relay port", set("1_4", "x", "192.0.2.10:6000", "10.0.0.10:6000", 30001), "ER"},
		{"a relay port outside the range", set("1_5", "x", "192.0.2.10:6000", "10.0.0.10:6000", 40000), "ER"},
		{"peers of the other address family", "1_6 S 2001:db8::1 10.0.0.1 192.0.2.1 10.0.0.10 6000 30000 30002 6000 60 x ", "ER"},
		{"a malformed S", "1_7 S 192.0.2.10 10.0.0.1 192.0.2.1", "ER"},
		{"ports held by another call with media", set("1_8", "x", "192.0.2.10:6000", "10.0.0.10:6000", 30008), "ER"},
		{"an unknown command", "1_9 X", "E unknown command \"X\""},
		{"no cookie", "S", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "ports held by another call with media" {
				h.mem.SetFlows(relay.Flow{Mark: relay.Mark(before[0].Index * 4)})
			}
			got := h.send(t, c.req)
			switch {
			case c.want == "" && got != nil:
				t.Errorf("reply %q, want none", got)
			case c.want != "" && !bytes.HasSuffix(got, []byte(c.want)):
				t.Errorf("reply %q, want one ending in %q", got, c.want)
			case c.want == "ER" && !moduleAccepts([]byte(c.req), got):
				t.Errorf("the module would not accept %q: it would stall through its retransmissions", got)
			}
		})
	}
	after := h.sessions(t)
	if len(after) != 1 || after[0].ID != before[0].ID || h.mem.Applied() != applied {
		t.Errorf("bad requests changed state: %d sessions, %d → %d batches", len(after), applied, h.mem.Applied())
	}
}

func TestTheCounterWrappingOntoAnEndedCallTakesItsPorts(t *testing.T) {
	h := newHarness(t)
	h.exchange(t, set("1_0", "old", "192.0.2.10:6000", "10.0.0.10:6000", 30000))
	// No flows for longer than S's timeout (60 s): the old call ended, but
	// Kamailio 5.6 never said so.
	h.srv.table.mu.Lock() // the table reads its clock under mu
	h.srv.table.now = func() time.Time { return time.Now().Add(61 * time.Second) }
	h.srv.table.mu.Unlock()
	h.exchange(t, set("1_1", "new", "192.0.2.11:6000", "10.0.0.11:6000", 30000))
	ss := h.sessions(t)
	if len(ss) != 1 || ss[0].Labels["call-id"] != "new" {
		t.Fatalf("sessions %v, want only the new call's", ss)
	}
	// D of the old call must not end the new one on the same ports.
	h.exchange(t, del("1_2", "old"))
	if n := len(h.sessions(t)); n != 1 {
		t.Errorf("D of the replaced call left %d sessions, want the new call's", n)
	}
}

// Kamailio's processes share the module's port counter without a lock, so
// two calls answered at once can be given the same ports; the one answered
// first has no media yet, and must not be ended by the second.
func TestACallAnsweredJustNowKeepsItsPorts(t *testing.T) {
	h := newHarness(t)
	h.exchange(t, set("1_0", "first", "192.0.2.10:6000", "10.0.0.10:6000", 30000))
	if got := h.exchange(t, set("1_1", "second", "192.0.2.11:6000", "10.0.0.11:6000", 30000)); !bytes.HasSuffix(got, []byte("ER")) {
		t.Errorf("reply %q, want ER", got)
	}
	if ss := h.sessions(t); len(ss) != 1 || ss[0].Labels["call-id"] != "first" {
		t.Errorf("sessions %v, want the first call's only", ss)
	}
}

func TestConfigGoesOnAfterTheNewestCallAtAFreeStep(t *testing.T) {
	h := newHarness(t)
	current := func(cookie string) int32 {
		var c NodeConfig
		if err := c.UnmarshalBinary(bytes.TrimPrefix(h.exchange(t, cookie+" G"), []byte(cookie+" G "))); err != nil {
			t.Fatal(err)
		}
		return c.CurrentPort
	}
	h.exchange(t, set("1_0", "c1", "192.0.2.10:6000", "10.0.0.10:6000", 30000))
	if got := current("2_0"); got != 30004 {
		t.Errorf("current_port %d after a call on 30000, want 30004", got)
	}
	h.exchange(t, set("1_1", "c2", "192.0.2.10:6002", "10.0.0.10:6002", 30008))
	if got := current("2_1"); got != 30004 {
		t.Errorf("current_port %d after calls on 30000 and 30008, want the free 30004", got)
	}
}

func TestTheTableIsRebuiltFromSessionLabelsAfterARestart(t *testing.T) {
	h := newHarness(t)
	h.exchange(t, set("1_0", "c1", "192.0.2.10:6000", "10.0.0.10:6000", 30000))
	h.m.Close()
	h.m, h.mem = switchboardtest.Manager(t, h.cfg) // same state dir: the journal
	h.serve(t)
	if n := len(h.sessions(t)); n != 1 {
		t.Fatalf("%d sessions after the restart, want 1", n)
	}
	h.exchange(t, del("2_0", "c1"))
	if n := len(h.sessions(t)); n != 0 {
		t.Errorf("D after a restart left %d sessions, want 0", n)
	}
}

func TestNewServerRefusesSwitchboardsTheModuleCannotDescribe(t *testing.T) {
	for _, c := range []struct{ name, ports, extra, def string }{
		{"IPv6 gates", "30000-30011", `[[switchboard]]
name = "v6"
gate-a = { address = "2001:db8::1", ports = "40000-40011" }
gate-b = { address = "2001:db8::2", ports = "40000-40011" }`, "v6"},
		{"fewer than four common ports", "30000-30002", "", "edge"},
		{"an unknown switchboard", "30000-30011", "", "nope"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := switchboardtest.Config(t, c.ports, c.extra)
			m, _ := switchboardtest.Manager(t, cfg)
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			if _, err := NewServer(pc, newCalls(m, cfg.Switchboards, c.def), m, cfg.Switchboards, c.def, Options{}); err == nil {
				t.Error("NewServer accepted it")
			}
		})
	}
}

func TestCallsWhoseSessionTimedOutLeaveTheTable(t *testing.T) {
	h := newHarness(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	srv, err := NewServer(pc, newCalls(h.m, h.cfg.Switchboards, "edge"), h.m, h.cfg.Switchboards, "edge", Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, _ := Parse([]byte(moduleSet))
	if _, err := srv.table.set(ctx, r.Mapping); err != nil {
		t.Fatal(err)
	}
	// The media timeout ends the session; Kamailio 5.6 sends no D.
	sub := h.m.Subscribe()
	defer sub.Close()
	if err := h.m.Delete(ctx, h.sessions(t)[0].ID); err != nil {
		t.Fatal(err)
	}
	e, err := sub.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv.table.calls.SessionEnded(e)
	if n, g := srv.table.calls.CountOf(calls.LRKProxy); n != 0 || g != 0 {
		t.Errorf("%d calls and %d sessions left in the table, want none", n, g)
	}
}

func TestAPairHalfHeldByAGoingCallEndsNoCall(t *testing.T) {
	h := newHarness(t)
	// Two old calls: "stale" holds gate-a's 30002 and has no media, "going"
	// holds gate-b's 30004 and has. A call asking for exactly those two is
	// refused, and the stale call is not ended on the way.
	h.exchange(t, set("1_0", "stale", "192.0.2.10:6000", "10.0.0.10:6000", 30000))
	h.exchange(t, "1_1 S 192.0.2.12 10.0.0.1 192.0.2.1 10.0.0.12 6000 30004 30006 6000 60 going ")
	for _, s := range h.sessions(t) {
		if s.Labels["call-id"] == "going" {
			h.mem.SetFlows(relay.Flow{Mark: relay.Mark(s.Index * 4)})
		}
	}
	h.srv.table.mu.Lock()
	h.srv.table.now = func() time.Time { return time.Now().Add(61 * time.Second) }
	h.srv.table.mu.Unlock()
	got := h.exchange(t, "1_2 S 192.0.2.11 10.0.0.1 192.0.2.1 10.0.0.11 6000 30004 30002 6000 60 new ")
	if !bytes.HasSuffix(got, []byte("ER")) {
		t.Fatalf("reply %q, want ER", got)
	}
	if n := len(h.sessions(t)); n != 2 {
		t.Errorf("%d sessions, want both old calls still there", n)
	}
}
