package sdprelay

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

func newEngine(t *testing.T) (*Engine, *switchboard.Manager, *relaytest.Memory) {
	t.Helper()
	m, mem := switchboardtest.Manager(t, switchboardtest.Config(t, "30000-30005", ""))
	return New(m), m, mem
}

const offer = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n" +
	"m=audio 4000 RTP/AVP 0\r\na=rtcp:4001\r\nm=video 0 RTP/AVP 96\r\nm=video 4002 RTP/AVP 96\r\n"

func TestAllocMakesOneSessionPerActiveStreamAndPointsTheSDPAtGateB(t *testing.T) {
	e, m, mem := newEngine(t)
	res, err := e.Alloc(context.Background(), Request{Switchboard: "edge", From: switchboard.SideA, SDP: offer, ReplaceOrigin: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sessions) != 3 || res.Sessions[0] == "" || res.Sessions[1] != "" || res.Sessions[2] == "" {
		t.Fatalf("sessions %q, want [id \"\" id]", res.Sessions)
	}
	want := "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n" +
		"m=audio 30000 RTP/AVP 0\r\na=rtcp:30001\r\nm=video 0 RTP/AVP 96\r\nm=video 30002 RTP/AVP 96\r\n"
	if res.SDP != want {
		t.Errorf("rewritten SDP:\n%q\nwant\n%q", res.SDP, want)
	}
	s, _ := m.Get(res.Sessions[0])
	if got := s.A.Signalled.RTP.String(); got != "192.0.2.10:4000" {
		t.Errorf("a-side peer %s, want the SDP's 192.0.2.10:4000", got)
	}
	if legs, _ := mem.Legs(context.Background()); len(legs) != 8 {
		t.Errorf("%d legs installed, want 8", len(legs))
	}
}

func TestBadSDPAllocatesNothing(t *testing.T) {
	e, m, _ := newEngine(t)
	bad := strings.Replace(offer, "m=audio 4000", "m=audio 70000", 1)
	_, err := e.Alloc(context.Background(), Request{Switchboard: "edge", From: switchboard.SideA, SDP: bad})
	if !errors.Is(err, switchboard.ErrInvalid) || !strings.Contains(err.Error(), `sdp: line 6: invalid port "70000"`) {
		t.Fatalf("error %v, want ErrInvalid naming line 6", err)
	}
	if n := len(m.List()); n != 0 {
		t.Errorf("%d sessions after a bad SDP, want 0", n)
	}
}

func TestRunningOutOfPortsMidwayUndoesTheWholeOffer(t *testing.T) {
	e, m, mem := newEngine(t)
	ctx := context.Background()
	if _, err := e.Alloc(ctx, Request{Switchboard: "edge", From: switchboard.SideA, SDP: offer}); err != nil {
		t.Fatal(err)
	}
	before, _ := mem.Legs(ctx)
	// Three pairs per gate: two are taken, the next offer's second stream fails.
	_, err := e.Alloc(ctx, Request{Switchboard: "edge", From: switchboard.SideA, SDP: offer})
	if !errors.Is(err, switchboard.ErrPortsExhausted) {
		t.Fatalf("error %v, want ErrPortsExhausted", err)
	}
	after, _ := mem.Legs(ctx)
	if len(after) != len(before) || len(m.List()) != 2 {
		t.Errorf("after a failed offer: %d legs (want %d), %d sessions (want 2)", len(after), len(before), len(m.List()))
	}
}

func TestReinviteKeepsPortsAddsAndReleasesStreams(t *testing.T) {
	e, m, _ := newEngine(t)
	ctx := context.Background()
	first, err := e.Alloc(ctx, Request{Switchboard: "edge", From: switchboard.SideA, SDP: offer})
	if err != nil {
		t.Fatal(err)
	}
	// Audio moves port, the second video stream goes away, the first comes back.
	re := "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n" +
		"m=audio 4100 RTP/AVP 0\r\nm=video 4200 RTP/AVP 96\r\n"
	res, err := e.Update(ctx, Request{From: switchboard.SideA, SDP: re, Sessions: first.Sessions})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sessions[0] != first.Sessions[0] || res.Sessions[1] == "" || len(res.Sessions) != 2 {
		t.Fatalf("sessions %q after re-INVITE of %q", res.Sessions, first.Sessions)
	}
	if _, err := m.Get(first.Sessions[2]); !errors.Is(err, switchboard.ErrNotFound) {
		t.Errorf("dropped stream's session: %v, want deleted", err)
	}
	s, _ := m.Get(res.Sessions[0])
	if s.A.Signalled.RTP.Port() != 4100 || !strings.Contains(res.SDP, "m=audio 30000 ") {
		t.Errorf("audio: peer %s, SDP %q; want peer port 4100 and relay port kept", s.A.Signalled.RTP, res.SDP)
	}
}

func TestHoldKeepsTheStreamAndTheHoldAddress(t *testing.T) {
	e, m, _ := newEngine(t)
	ctx := context.Background()
	first, err := e.Alloc(ctx, Request{Switchboard: "edge", From: switchboard.SideA, SDP: offer})
	if err != nil {
		t.Fatal(err)
	}
	hold := "v=0\r\no=- 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
		"m=audio 4000 RTP/AVP 0\r\na=sendonly\r\nm=video 0 RTP/AVP 96\r\nm=video 4002 RTP/AVP 96\r\na=inactive\r\n"
	res, err := e.Update(ctx, Request{From: switchboard.SideA, SDP: hold, Sessions: first.Sessions})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Sessions, ",") != strings.Join(first.Sessions, ",") {
		t.Errorf("held sessions %q, want %q kept", res.Sessions, first.Sessions)
	}
	if !strings.Contains(res.SDP, "c=IN IP4 0.0.0.0\r\n") || !strings.Contains(res.SDP, "a=sendonly\r\n") {
		t.Errorf("hold not kept as the device wrote it:\n%s", res.SDP)
	}
	if len(m.List()) != 2 {
		t.Errorf("%d sessions, want 2", len(m.List()))
	}
}
