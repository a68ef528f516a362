package calls

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
	"github.com/nftrtpproxy/nftrtpproxy/sdp"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

type fixture struct {
	calls *Calls
	mgr   *switchboard.Manager
	mem   *relaytest.Memory
	cfg   *switchboard.Config
}

func newFixture(t *testing.T, dir string, mem *relaytest.Memory) *fixture {
	t.Helper()
	cfg, err := switchboard.ParseConfig([]byte(fmt.Sprintf(`state-dir = %q
[[switchboard]]
name = "edge"
gate-a = { name = "external", address = "192.0.2.1", ports = "30000-30299" }
gate-b = { name = "internal", address = "10.0.0.1", ports = "30000-30299" }
`, dir)))
	if err != nil {
		t.Fatal(err)
	}
	m := switchboard.NewManager(cfg, mem, switchboard.Options{PickPort: switchboardtest.InOrder})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	c := New(m, sdprelay.New(m), cfg.Switchboards, "edge")
	c.Restore()
	return &fixture{calls: c, mgr: m, mem: mem, cfg: cfg}
}

func body(addr string, port int, extra string) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %[1]s\r\ns=-\r\nc=IN IP4 %[1]s\r\nt=0 0\r\nm=audio %[2]d RTP/AVP 0\r\n%[3]s", addr, port, extra)
}

func mediaOf(t *testing.T, b string) string {
	t.Helper()
	s, err := sdp.Parse([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s:%d", s.Media[0].Connection.Addr, s.Media[0].Port)
}

func TestOfferAnswerReinviteAndBye(t *testing.T) {
	f := newFixture(t, t.TempDir(), relaytest.NewMemory())
	ctx := context.Background()
	offer, err := f.calls.Offer(ctx, Request{CallID: "c1", FromTag: "alice", SDP: body("192.0.2.10", 4000, "")})
	if err != nil {
		t.Fatal(err)
	}
	if got := mediaOf(t, offer); got != "10.0.0.1:30000" {
		t.Errorf("offer to the callee points at %s, want gate-b 10.0.0.1:30000", got)
	}
	s := f.mgr.List()[0]
	if s.State != switchboard.Ringing {
		t.Errorf("session after offer is %s, want ringing", s.State)
	}
	answer, err := f.calls.Answer(ctx, Request{CallID: "c1", FromTag: "alice", ToTag: "bob", SDP: body("10.0.0.10", 5000, "")})
	if err != nil {
		t.Fatal(err)
	}
	if got := mediaOf(t, answer); got != "192.0.2.1:30000" {
		t.Errorf("answer to the caller points at %s, want gate-a 192.0.2.1:30000", got)
	}
	s, _ = f.mgr.Get(s.ID)
	if s.State != switchboard.Active || s.B.Signalled.RTP.String() != "10.0.0.10:5000" {
		t.Errorf("after answer: state %s, b %s", s.State, s.B.Signalled.RTP)
	}
	// A re-INVITE from the callee (from-tag bob) moves the callee; the SDP
	// for the caller points at gate-a, on the same port.
	re, err := f.calls.Offer(ctx, Request{CallID: "c1", FromTag: "bob", ToTag: "alice", SDP: body("10.0.0.11", 6000, "")})
	if err != nil {
		t.Fatal(err)
	}
	if got := mediaOf(t, re); got != "192.0.2.1:30000" {
		t.Errorf("callee's re-INVITE to the caller points at %s, want 192.0.2.1:30000", got)
	}
	s, _ = f.mgr.Get(s.ID)
	if s.B.Signalled.RTP.String() != "10.0.0.11:6000" || len(f.mgr.List()) != 1 {
		t.Errorf("after callee re-INVITE: b %s, %d sessions", s.B.Signalled.RTP, len(f.mgr.List()))
	}
	found, err := f.calls.Delete(ctx, "c1", "alice", "bob", "")
	if !found || err != nil || len(f.mgr.List()) != 0 {
		t.Errorf("delete: found %v err %v, %d sessions left", found, err, len(f.mgr.List()))
	}
	if found, _ := f.calls.Delete(ctx, "c1", "alice", "", ""); found {
		t.Error("second delete found the call")
	}
}

func TestAnswerOfUnknownCallIsAnError(t *testing.T) {
	f := newFixture(t, t.TempDir(), relaytest.NewMemory())
	_, err := f.calls.Answer(context.Background(), Request{CallID: "nope", FromTag: "a", ToTag: "b", SDP: body("10.0.0.10", 5000, "")})
	if !errors.Is(err, ErrUnknownCall) {
		t.Fatalf("error %v, want ErrUnknownCall", err)
	}
}

func TestDirectionSelectsSwitchboardAndSide(t *testing.T) {
	f := newFixture(t, t.TempDir(), relaytest.NewMemory())
	ctx := context.Background()
	out, err := f.calls.Offer(ctx, Request{CallID: "c2", FromTag: "x", SDP: body("10.0.0.10", 5000, ""), Direction: [2]string{"internal", "external"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := mediaOf(t, out); !strings.HasPrefix(got, "192.0.2.1:") {
		t.Errorf("an offer from the internal side points at %s, want gate-a", got)
	}
	if _, err := f.calls.Offer(ctx, Request{CallID: "c3", FromTag: "x", SDP: body("10.0.0.10", 5000, ""), Direction: [2]string{"mars", "venus"}}); !errors.Is(err, ErrNoRoute) {
		t.Errorf("unknown direction: %v, want ErrNoRoute", err)
	}
}

func TestFailedForkedBranchDeletesOnlyThatBranch(t *testing.T) {
	f := newFixture(t, t.TempDir(), relaytest.NewMemory())
	ctx := context.Background()
	for _, br := range []string{"z9hG4bK-1", "z9hG4bK-2"} {
		if _, err := f.calls.Offer(ctx, Request{CallID: "c4", FromTag: "alice", ViaBranch: br, SDP: body("192.0.2.10", 4000, "")}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.mgr.List()); n != 2 {
		t.Fatalf("%d sessions for two branches, want 2", n)
	}
	if _, err := f.calls.Delete(ctx, "c4", "alice", "", "z9hG4bK-1"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.mgr.List()); n != 1 {
		t.Fatalf("%d sessions after one branch failed, want 1", n)
	}
	if _, err := f.calls.Answer(ctx, Request{CallID: "c4", FromTag: "alice", ToTag: "bob", ViaBranch: "z9hG4bK-2", SDP: body("10.0.0.10", 5000, "")}); err != nil {
		t.Fatalf("answer on the surviving branch: %v", err)
	}
}

func TestRestartRebuildsCallsFromSessionLabels(t *testing.T) {
	dir, mem := t.TempDir(), relaytest.NewMemory()
	f := newFixture(t, dir, mem)
	ctx := context.Background()
	if _, err := f.calls.Offer(ctx, Request{CallID: "c5", FromTag: "alice", SDP: body("192.0.2.10", 4000, "")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.calls.Answer(ctx, Request{CallID: "c5", FromTag: "alice", ToTag: "bob", SDP: body("10.0.0.10", 5000, "")}); err != nil {
		t.Fatal(err)
	}
	f.mgr.Close()
	g := newFixture(t, dir, mem)
	if ids := g.calls.ListOf(NG, 0); len(ids) != 1 || ids[0] != "c5" {
		t.Fatalf("calls after restart %q, want [c5]", ids)
	}
	re, err := g.calls.Offer(ctx, Request{CallID: "c5", FromTag: "bob", ToTag: "alice", SDP: body("10.0.0.12", 7000, "")})
	if err != nil {
		t.Fatalf("callee re-INVITE after restart: %v", err)
	}
	if got := mediaOf(t, re); got != "192.0.2.1:30000" {
		t.Errorf("re-INVITE after restart points at %s, want the same gate-a port", got)
	}
	if n := len(g.mgr.List()); n != 1 {
		t.Errorf("%d sessions after re-INVITE, want 1 (no new allocation)", n)
	}
}

func TestRestoreLeavesOtherFrontEndsSessionsAlone(t *testing.T) {
	dir, mem := t.TempDir(), relaytest.NewMemory()
	f := newFixture(t, dir, mem)
	if _, err := f.mgr.Alloc(context.Background(), switchboard.AllocRequest{Switchboard: "edge", Labels: map[string]string{"call-id": "api-made"}}); err != nil {
		t.Fatal(err)
	}
	f.mgr.Close()
	g := newFixture(t, dir, mem)
	if ids := g.calls.ListOf(NG, 0); len(ids) != 0 {
		t.Fatalf("calls after restart %q, want none: the session was made through the API", ids)
	}
}

// streamsSDP is an offer of n audio streams from 192.0.2.10.
func streamsSDP(n int) string {
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n")
	for i := range n {
		fmt.Fprintf(&b, "m=audio %d RTP/AVP 0\r\n", 4000+2*i)
	}
	return b.String()
}

func TestStreamsPerRequestAndPerCallAreCapped(t *testing.T) {
	f := newFixture(t, t.TempDir(), relaytest.NewMemory())
	ctx := context.Background()
	_, err := f.calls.Offer(ctx, Request{CallID: "big", FromTag: "a", SDP: streamsSDP(switchboard.MaxStreamsPerRequest + 1)})
	if !errors.Is(err, switchboard.ErrSessionLimit) || !strings.Contains(err.Error(), "33 streams in one SDP, above the limit of 32") {
		t.Errorf("an offer of 33 streams: %v, want the per-request limit named", err)
	}
	if n := len(f.mgr.List()); n != 0 {
		t.Fatalf("the refused offer left %d sessions", n)
	}
	for i := range switchboard.MaxStreamsPerCall / switchboard.MaxStreamsPerRequest {
		r := Request{CallID: "forked", FromTag: "a", ViaBranch: fmt.Sprint("b", i), SDP: streamsSDP(switchboard.MaxStreamsPerRequest)}
		if _, err := f.calls.Offer(ctx, r); err != nil {
			t.Fatalf("fork %d: %v", i, err)
		}
	}
	_, err = f.calls.Offer(ctx, Request{CallID: "forked", FromTag: "a", ViaBranch: "b-last", SDP: streamsSDP(1)})
	if !errors.Is(err, switchboard.ErrSessionLimit) || !strings.Contains(err.Error(), "65 streams in one call, above the limit of 64") {
		t.Errorf("the call's 65th stream: %v, want the per-call limit named", err)
	}
	if n := len(f.mgr.List()); n != switchboard.MaxStreamsPerCall {
		t.Errorf("%d sessions, want %d", n, switchboard.MaxStreamsPerCall)
	}
	if _, err := f.calls.Offer(ctx, Request{CallID: "forked", FromTag: "a", ViaBranch: "b0", SDP: streamsSDP(switchboard.MaxStreamsPerRequest)}); err != nil {
		t.Errorf("a re-offer of a fork keeping its streams: %v", err)
	}
}
