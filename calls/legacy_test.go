package calls

import (
	"context"
	"net/netip"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// An upgrade restores the calls the previous version made: sessions in the
// journal carry the labels each front end wrote when it kept its own table.

// restartWith journals one session per label set, as the previous version
// left them, and restarts on that journal.
func restartWith(t *testing.T, sets ...map[string]string) *fixture {
	t.Helper()
	dir, mem := t.TempDir(), relaytest.NewMemory()
	f := newFixture(t, dir, mem)
	for _, l := range sets {
		r := switchboard.AllocRequest{Switchboard: "edge", Labels: l,
			A: switchboard.Endpoint{RTP: netip.MustParseAddrPort("192.0.2.10:6000")},
			B: switchboard.Endpoint{RTP: netip.MustParseAddrPort("10.0.0.10:6000")}}
		if _, err := f.mgr.Alloc(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	f.mgr.Close()
	return newFixture(t, dir, mem)
}

func TestUpgradeRestoresNGCallsOfOwnerCalls(t *testing.T) {
	f := restartWith(t, map[string]string{"owner": "calls", "call-id": "c1", "branch": "", "offerer-tag": "alice",
		"offerer-side": "a", "answerer-tag": "bob", "m": "0"})
	if ids := f.calls.ListOf(NG, 0); len(ids) != 1 || ids[0] != "c1" {
		t.Fatalf("ng calls after the upgrade %q, want [c1]", ids)
	}
	re, err := f.calls.Offer(context.Background(), Request{CallID: "c1", FromTag: "bob", ToTag: "alice", SDP: body("10.0.0.12", 7000, "")})
	if err != nil {
		t.Fatal(err)
	}
	if got := mediaOf(t, re); got != "192.0.2.1:30000" {
		t.Errorf("the callee's re-INVITE points at %s, want the old session's gate-a", got)
	}
	if n := len(f.mgr.List()); n != 1 {
		t.Errorf("%d sessions, want the old one only", n)
	}
}

func TestUpgradeRestoresRTPProxyStreams(t *testing.T) {
	f := restartWith(t, map[string]string{"rtpproxy-call-id": "c2", "rtpproxy-from-tag": "alice",
		"rtpproxy-medianum": "1", "rtpproxy-to-tag": "bob", "rtpproxy-side": "a"})
	var seen []Stream
	byCreator := func(sts []Stream) (int, bool) {
		seen = sts
		for i, st := range sts {
			if st.Creator == "alice;1" {
				return i, true
			}
		}
		return -1, false
	}
	ctx := context.Background()
	rep, err := f.calls.StreamOffer(ctx, StreamRequest{CallID: "c2", Creator: "alice;1", From: "alice", To: "bob",
		Media: netip.MustParseAddrPort("192.0.2.11:6000"), Match: byCreator})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0].Other != "bob" {
		t.Errorf("restored streams %+v, want alice;1 with bob", seen)
	}
	if rep.Gate.String() != "10.0.0.1:30000" || len(f.mgr.List()) != 1 {
		t.Errorf("U after the upgrade answered %s with %d sessions; want the old session's gate-b", rep.Gate, len(f.mgr.List()))
	}
	if s := f.mgr.List()[0]; s.A.Signalled.RTP.String() != "192.0.2.11:6000" {
		t.Errorf("the creator's address is %s, want the U's", s.A.Signalled.RTP)
	}
	if err := f.calls.StreamDelete(ctx, "c2", func(st Stream) bool { return st.Other == "bob" }); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.calls.CountOf(RTPProxy); n != 0 || len(f.mgr.List()) != 0 {
		t.Errorf("%d calls and %d sessions after D, want none", n, len(f.mgr.List()))
	}
}

func TestUpgradeRestoresLRKProxyCalls(t *testing.T) {
	f := restartWith(t, map[string]string{"lrkproxy-call-id": "c3"})
	if ids := f.calls.ListOf(LRKProxy, 0); len(ids) != 1 || ids[0] != "c3" {
		t.Fatalf("lrkproxy calls after the upgrade %q, want [c3]", ids)
	}
	found, err := f.calls.DeletePair(context.Background(), "c3")
	if !found || err != nil || len(f.mgr.List()) != 0 {
		t.Errorf("D after the upgrade: found %v, %v, %d sessions left", found, err, len(f.mgr.List()))
	}
}

func TestUpgradeRestoresMediaProxyCalls(t *testing.T) {
	f := restartWith(t,
		map[string]string{"mediaproxy-call-id": "c4", "mediaproxy-from-tag": "alice", "mediaproxy-stream": "0",
			"mediaproxy-caller-side": "b", "mediaproxy-dialog-id": "3:1887"},
		map[string]string{"mediaproxy-call-id": "c4", "mediaproxy-from-tag": "alice", "mediaproxy-stream": "1",
			"mediaproxy-caller-side": "b"})
	// The callee's reply with both streams: it is on gate-a (the caller on b).
	p, err := f.calls.ListUpdate(context.Background(), ListUpdate{CallID: "c4", FromTag: "alice", ToTag: "bob",
		Streams: []ListedStream{{Media: netip.MustParseAddrPort("192.0.2.20:8000")}, {Media: netip.MustParseAddrPort("192.0.2.20:8002")}}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Addr.String() != "10.0.0.1" || len(p.Ports) != 2 || p.Ports[0] != 30000 || p.Ports[1] != 30002 {
		t.Errorf("placement %v %v, want the old sessions' gate-b ports", p.Addr, p.Ports)
	}
	if n := len(f.mgr.List()); n != 2 {
		t.Errorf("%d sessions, want the two old ones", n)
	}
	if err := f.calls.ListRemove(context.Background(), "c4", "alice", "bob"); err != nil || len(f.mgr.List()) != 0 {
		t.Errorf("remove after the upgrade: %v, %d sessions left", err, len(f.mgr.List()))
	}
}

// An rtpproxy stream's labels carry the SIP tags alone (what a timeout
// notification names the dialog by) and restore with the medianum.
func TestRTPProxyLabelsKeepTheMedianumApart(t *testing.T) {
	dir, mem := t.TempDir(), relaytest.NewMemory()
	f := newFixture(t, dir, mem)
	byCreator := func(sts []Stream) (int, bool) {
		for i, st := range sts {
			if st.Creator == "alice;2" {
				return i, true
			}
		}
		return -1, false
	}
	r := StreamRequest{CallID: "c6", Creator: "alice;2", From: "alice", To: "bob",
		Media: netip.MustParseAddrPort("192.0.2.10:6000"), Match: byCreator,
		Bridge: Bridge{From: "external", To: "internal"}}
	if _, err := f.calls.StreamOffer(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if l := f.mgr.List()[0].Labels; l["offerer-tag"] != "alice" || l["medianum"] != "2" || l["answerer-tag"] != "bob" {
		t.Errorf("labels %v, want offerer-tag alice, medianum 2, answerer-tag bob", l)
	}
	f.mgr.Close()
	g := newFixture(t, dir, mem)
	if _, err := g.calls.StreamOffer(context.Background(), r); err != nil || len(g.mgr.List()) != 1 {
		t.Errorf("U after a restart: %v, %d sessions; want the restored stream updated", err, len(g.mgr.List()))
	}
}
