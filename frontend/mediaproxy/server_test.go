package mediaproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// harness is a server on a unix socket over a real Manager on the in-memory
// dataplane, and one connection standing in for a Kamailio process.
type harness struct {
	cfg  *switchboard.Config
	m    *switchboard.Manager
	mem  *relaytest.Memory
	path string
	conn net.Conn
	r    *bufio.Reader
}

// labRoute is the kernel's choice in the lab: the caller's network is
// reached from 192.0.2.1 (gate-a), the callee's from 10.0.0.1 (gate-b).
func labRoute(dst netip.Addr) (netip.Addr, error) {
	switch {
	case netip.MustParsePrefix("192.0.2.0/24").Contains(dst):
		return netip.MustParseAddr("192.0.2.1"), nil
	case netip.MustParsePrefix("10.0.0.0/24").Contains(dst):
		return netip.MustParseAddr("10.0.0.1"), nil
	}
	return netip.Addr{}, errors.New("network unreachable")
}

// newCalls returns the call table over m, restored as the daemon does.
func newCalls(m *switchboard.Manager, boards []*switchboard.Switchboard, def string) *calls.Calls {
	c := calls.New(m, sdprelay.New(m), boards, def)
	c.Restore()
	return c
}

func countCalls(srv *Server) int {
	n, _ := srv.calls.CountOf(calls.MediaProxy)
	return n
}

func newHarness(t *testing.T, ports string) *harness {
	t.Helper()
	h := &harness{cfg: switchboardtest.Config(t, ports, "")}
	h.m, h.mem = switchboardtest.Manager(t, h.cfg)
	h.path = filepath.Join(t.TempDir(), "run", "dispatcher.sock")
	h.serve(t)
	return h
}

// serve starts a server over h.m on h.path and connects to it.
func (h *harness) serve(t *testing.T) {
	t.Helper()
	srv, err := NewServer(newCalls(h.m, h.cfg.Switchboards, "edge"), h.cfg.Switchboards, "edge", Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.route = labRoute
	l, err := Listen(h.path, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	h.connect(t)
}

func (h *harness) connect(t *testing.T) {
	t.Helper()
	c, err := net.Dial("unix", h.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h.conn, h.r = c, bufio.NewReader(c)
}

// ask sends one request and returns the reply line without its CRLF.
func (h *harness) ask(t *testing.T, req string) string {
	t.Helper()
	if _, err := h.conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = h.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := h.r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the reply to %q: %v", req, err)
	}
	if !strings.HasSuffix(line, "\r\n") {
		t.Fatalf("reply %q does not end in CRLF (the module waits for it)", line)
	}
	return strings.TrimSuffix(line, "\r\n")
}

func (h *harness) only(t *testing.T) *switchboard.Session {
	t.Helper()
	ss := h.m.List()
	if len(ss) != 1 {
		t.Fatalf("%d sessions, want 1", len(ss))
	}
	return ss[0]
}

// upd builds an update as the module writes it.
func upd(typ, callID, fromTag, toTag, sig string, media ...string) string {
	r := fmt.Sprintf("update\r\ntype: %s\r\ndialog_id: \r\ncall_id: %s\r\ncseq: 1\r\nfrom_uri: alice@example.com\r\n"+
		"to_uri: bob@example.com\r\nfrom_tag: %s\r\nto_tag: %s\r\nuser_agent: test\r\nsignaling_ip: %s\r\nmedia_relay: \r\n",
		typ, callID, fromTag, toTag, sig)
	if len(media) > 0 {
		r += "media: " + strings.Join(media, ",") + "\r\n"
	}
	return r + "\r\n"
}

func remove(callID, fromTag, toTag string) string {
	return fmt.Sprintf("remove\r\ncall_id: %s\r\nfrom_tag: %s\r\nto_tag: %s\r\n\r\n", callID, fromTag, toTag)
}

func TestACallWithHoldAndHangup(t *testing.T) {
	h := newHarness(t, "30000-30011")
	if got := h.ask(t, moduleInvite); got != "10.0.0.1 30000" {
		t.Fatalf("INVITE: %q, want the callee-facing gate 10.0.0.1 30000", got)
	}
	s := h.only(t)
	if s.A.Signalled.RTP.String() != "192.0.2.10:6000" || s.B.Signalled.RTP.IsValid() || s.State != switchboard.Ringing {
		t.Errorf("after the offer: a=%s b=%s %s; want the caller on gate-a, ringing", s.A.Signalled.RTP, s.B.Signalled.RTP, s.State)
	}
	if got := h.ask(t, moduleOK); got != "192.0.2.1 30000" {
		t.Fatalf("200 OK: %q, want the caller-facing gate 192.0.2.1 30000", got)
	}
	s = h.only(t)
	if s.B.Signalled.RTP.String() != "10.0.0.10:6000" || s.State != switchboard.Active {
		t.Errorf("after the answer: b=%s %s; want the callee on gate-b, active", s.B.Signalled.RTP, s.State)
	}
	// The caller holds (a re-INVITE with a=sendonly), the callee answers.
	hold := strings.Replace(strings.Replace(moduleInvite, "sendrecv", "sendonly", 1), "to_tag: \r\n", "to_tag: 4712SIPpTag011\r\n", 1)
	if got := h.ask(t, hold); got != "10.0.0.1 30000" {
		t.Errorf("hold: %q, want the same port", got)
	}
	if s = h.only(t); !s.A.Signalled.Hold || s.A.Signalled.RTP.String() != "192.0.2.10:6000" {
		t.Errorf("after hold: a=%+v, want the same address on hold", s.A.Signalled)
	}
	// The callee hangs up: its BYE has its own tag as From tag.
	if got := h.ask(t, moduleRemove); got != "removed" {
		t.Fatalf("remove: %q, want removed", got)
	}
	if n := len(h.m.List()); n != 0 {
		t.Errorf("%d sessions after remove, want 0", n)
	}
	if legs, _ := h.mem.Legs(context.Background()); len(legs) != 0 {
		t.Errorf("%d legs after remove, want 0", len(legs))
	}
}

func TestACallFromTheInternalSidePutsTheCallerOnGateB(t *testing.T) {
	h := newHarness(t, "30000-30011")
	if got := h.ask(t, upd("request", "in-1", "f1", "", "10.0.0.10", "audio:10.0.0.10:7000:sendrecv:ice=no")); got != "192.0.2.1 30000" {
		t.Fatalf("INVITE from the inside: %q, want the external gate", got)
	}
	if got := h.ask(t, upd("reply", "in-1", "f1", "t1", "192.0.2.10", "audio:192.0.2.10:8000:sendrecv:ice=no")); got != "10.0.0.1 30000" {
		t.Fatalf("its answer: %q, want the internal gate", got)
	}
	s := h.only(t)
	if s.B.Signalled.RTP.String() != "10.0.0.10:7000" || s.A.Signalled.RTP.String() != "192.0.2.10:8000" {
		t.Errorf("a=%s b=%s; want the caller on gate-b", s.A.Signalled.RTP, s.B.Signalled.RTP)
	}
}

func TestWithoutARouteToAGateTheCallerIsOnGateA(t *testing.T) {
	h := newHarness(t, "30000-30011")
	if got := h.ask(t, upd("request", "far-1", "f1", "", "203.0.113.5", "audio:203.0.113.5:4000:sendrecv:ice=no")); got != "10.0.0.1 30000" {
		t.Fatalf("%q, want the default switchboard with the caller on gate-a", got)
	}
}

func TestStreamsAreAddedRejectedAndDropped(t *testing.T) {
	h := newHarness(t, "30000-30011")
	if got := h.ask(t, moduleEngaged); got != "10.0.0.1 30000 30002" {
		t.Fatalf("offer of two streams: %q", got)
	}
	for _, s := range h.m.List() {
		if s.Labels["dialog-id"] != "3:1887" {
			t.Errorf("session %s labels %v, want the dialog id", s.ID, s.Labels)
		}
	}
	// The callee rejects the video stream with port 0.
	ans := upd("reply", "2-4711@192.0.2.10", "a1", "b1", "10.0.0.10", "audio:10.0.0.10:5000:sendrecv:ice=no", "video:10.0.0.10:0:sendrecv:ice=no")
	if got := h.ask(t, ans); got != "192.0.2.1 30000 0" {
		t.Fatalf("answer rejecting video: %q, want port 0 for it", got)
	}
	if n := len(h.m.List()); n != 1 {
		t.Fatalf("%d sessions after the rejection, want 1", n)
	}
	// A re-offer by the callee (From is the callee) lists audio only.
	re := upd("request", "2-4711@192.0.2.10", "b1", "a1", "10.0.0.10", "audio:10.0.0.10:5002:sendrecv:ice=no")
	if got := h.ask(t, re); got != "192.0.2.1 30000" {
		t.Fatalf("callee's re-offer: %q, want the caller-facing port", got)
	}
	if s := h.only(t); s.B.Signalled.RTP.String() != "10.0.0.10:5002" {
		t.Errorf("callee re-pointed to %s, want 10.0.0.10:5002", s.B.Signalled.RTP)
	}
}

func TestALateOfferIsPlacedFromTheReply(t *testing.T) {
	h := newHarness(t, "30000-30011")
	// INVITE without SDP: nothing is sent. The 200 OK carries the offer.
	if got := h.ask(t, upd("reply", "late-1", "f1", "t1", "10.0.0.10", "audio:10.0.0.10:6000:sendrecv:ice=no")); got != "192.0.2.1 30000" {
		t.Fatalf("offer in the 200 OK: %q, want the caller-facing gate", got)
	}
	if got := h.ask(t, upd("request", "late-1", "f1", "t1", "192.0.2.10", "audio:192.0.2.10:6000:sendrecv:ice=no")); got != "10.0.0.1 30000" {
		t.Fatalf("answer in the ACK: %q, want the callee-facing gate", got)
	}
	if s := h.only(t); s.A.Signalled.RTP.String() != "192.0.2.10:6000" || s.B.Signalled.RTP.String() != "10.0.0.10:6000" || s.State != switchboard.Active {
		t.Errorf("a=%s b=%s %s", s.A.Signalled.RTP, s.B.Signalled.RTP, s.State)
	}
}

func TestA200WithoutSDPAnswersTheCall(t *testing.T) {
	h := newHarness(t, "30000-30011")
	h.ask(t, moduleInvite)
	noSDP := upd("reply", "1-4711@192.0.2.10", "4711SIPpTag001", "4712SIPpTag011", "10.0.0.10")
	if got := h.ask(t, noSDP); got != "192.0.2.1 30000" {
		t.Errorf("200 OK without SDP: %q", got)
	}
	s := h.only(t)
	if s.State != switchboard.Active {
		t.Errorf("state %s, want active", s.State)
	}
	// A re-INVITE's 200 OK without SDP leaves the active stream alone.
	h.ask(t, strings.Replace(noSDP, "cseq: 1", "cseq: 2", 1))
	if again := h.only(t); !again.A.LearnUntil.Equal(s.A.LearnUntil) {
		t.Errorf("learning window moved from %s to %s: an active stream was adjusted again", s.A.LearnUntil, again.A.LearnUntil)
	}
}

func TestUnknownCallsAndBadRequestsAreErrorsAndChangeNothing(t *testing.T) {
	h := newHarness(t, "30000-30003")
	h.ask(t, moduleInvite)
	before, applied := h.m.List(), h.mem.Applied()
	for _, c := range []struct{ name, req string }{
		{"remove of an unknown call", remove("nope", "a", "b")},
		{"an update without SDP for an unknown call", upd("reply", "nope", "a", "b", "10.0.0.10")},
		{"an unknown command", "offer\r\ncall_id: x\r\n\r\n"},
		{"an update without call_id", strings.Replace(moduleInvite, "call_id: 1-4711@192.0.2.10\r\n", "", 1)},
		{"a malformed stream", strings.Replace(moduleInvite, "audio:192.0.2.10:6000", "audio:192.0.2.10", 1)},
		{"media of the wrong family", upd("request", "v6", "f", "", "192.0.2.10", "audio:2001:db8::1:4000:sendrecv:ice=no")},
		{"more streams than free ports", upd("request", "big", "f", "", "192.0.2.10",
			"audio:192.0.2.11:4000:sendrecv:ice=no", "video:192.0.2.11:4002:sendrecv:ice=no")},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := h.ask(t, c.req); got != "error" {
				t.Errorf("reply %q, want error", got)
			}
		})
	}
	after := h.m.List()
	if len(after) != 1 || after[0].ID != before[0].ID || h.mem.Applied() != applied+2 {
		// The last case allocates one stream, then undoes it: two batches.
		t.Errorf("state changed: %d sessions, %d → %d batches", len(after), applied, h.mem.Applied())
	}
	// The connection still serves.
	if got := h.ask(t, moduleRemove); got != "removed" {
		t.Errorf("remove after the errors: %q", got)
	}
}

func TestAnOverlongLineClosesTheConnectionOnly(t *testing.T) {
	h := newHarness(t, "30000-30011")
	if _, err := h.conn.Write([]byte("update\r\nuser_agent: " + strings.Repeat("x", maxRequest) + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = h.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if line, err := h.r.ReadString('\n'); err == nil {
		t.Fatalf("reply %q to an overlong line, want the connection closed", line)
	}
	h.connect(t)
	if got := h.ask(t, moduleInvite); got != "10.0.0.1 30000" {
		t.Errorf("a new connection: %q", got)
	}
}

func TestTheTableIsRebuiltFromSessionLabelsAfterARestart(t *testing.T) {
	h := newHarness(t, "30000-30011")
	h.ask(t, moduleInvite)
	h.ask(t, moduleOK)
	h.m.Close()
	h.m, h.mem = switchboardtest.Manager(t, h.cfg)
	h.serve(t) // the old server removed its socket file; a new one on the same path
	if got := h.ask(t, moduleOK); got != "192.0.2.1 30000" {
		t.Errorf("the answer again after a restart: %q, want the same port", got)
	}
	if got := h.ask(t, moduleRemove); got != "removed" || len(h.m.List()) != 0 {
		t.Errorf("remove after a restart: %q, %d sessions", got, len(h.m.List()))
	}
}

func TestListenReplacesAStaleSocketButNoOtherFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "d.sock")
	l, err := Listen(p, "")
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // a crashed daemon leaves its socket file
	l, err = Listen(p, "")
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	l.Close()
	file := filepath.Join(dir, "file")
	if err := writeFile(file); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file, ""); err == nil {
		t.Error("Listen replaced a regular file")
	}
}

func writeFile(p string) error { return os.WriteFile(p, []byte("x"), 0o600) }

func TestCallsWhoseSessionsEndedLeaveTheTable(t *testing.T) {
	h := newHarness(t, "30000-30011")
	srv, err := NewServer(newCalls(h.m, h.cfg.Switchboards, "edge"), h.cfg.Switchboards, "edge", Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.route = labRoute
	r, _ := Parse([]byte(moduleEngaged))
	ctx := context.Background()
	if _, err := srv.calls.ListUpdate(ctx, srv.listUpdate(r.Update)); err != nil {
		t.Fatal(err)
	}
	ss := h.m.List()
	sub := h.m.Subscribe()
	defer sub.Close()
	next := func() {
		t.Helper()
		e, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		srv.calls.SessionEnded(e)
	}
	if err := h.m.Delete(ctx, ss[1].ID); err != nil { // the ringing timeout of one stream
		t.Fatal(err)
	}
	next()
	if n := countCalls(srv); n != 1 {
		t.Fatalf("%d calls after one of two streams ended, want 1", n)
	}
	if err := h.m.Delete(ctx, ss[0].ID); err != nil {
		t.Fatal(err)
	}
	next()
	if n := countCalls(srv); n != 0 {
		t.Errorf("%d calls after all streams ended, want 0", n)
	}
}
