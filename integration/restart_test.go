//go:build linux && integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/netlab"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// Hard case 8: the daemon is killed mid-call. Media keeps flowing (the
// kernel holds it); on restart the daemon rebuilds its sessions from the
// journal and the kernel, can still update and delete them, and removes
// what no session owns.
func TestSIGKILLMidCallKeepsMediaAndRestartRebuilds(t *testing.T) {
	lab, d, a, b, moved, s := learnedCall(t, 10, true)

	d.kill()
	b.rtpR.Reset()
	a.send(t, s.GateA, 20, false)
	expect(t, "callee while the daemon is dead", b.rtpR, s.GateB, 20)
	b.send(t, s.GateB, 20, false)
	expect(t, "caller while the daemon is dead", a.rtpR, s.GateA, 20)

	// An orphan the journal knows nothing of: a leg added behind the
	// daemon's back while it was down. Restart must remove it. Its port is
	// one the session's random gate-a pair does not hold (else nft refuses
	// the key as taken), and it is looked for by its whole key.
	port := 30990
	if int(s.GateA.Port()) == port {
		port = 30994
	}
	key := fmt.Sprintf("%s . %d", lab.RouterExtAddr, port)
	orphan := "add element inet nftrtpproxy leg4 { " + key + " : 0x52ffff00 }"
	if out, err := lab.Router.Run(context.Background(), "nft", orphan); err != nil {
		t.Fatalf("nft %s: %v: %s", orphan, err, out)
	}
	d.start()
	after := nftTable(t, lab)
	if strings.Contains(after, key) {
		t.Errorf("orphaned element %s survived the restart:\n%s", key, after)
	}

	got, err := d.api.Show(ctx(t), s.ID)
	if err != nil {
		t.Fatalf("show after restart: %v\n%s", err, d.logText())
	}
	if got.GateA != s.GateA || got.GateB != s.GateB || got.A.Learned.RTP != a.addr {
		t.Errorf("restored session: gates %s %s learned %s; want %s %s %s", got.GateA, got.GateB, got.A.Learned.RTP, s.GateA, s.GateB, a.addr)
	}
	b.rtpR.Reset()
	a.send(t, s.GateA, 10, false)
	expect(t, "callee after the restart", b.rtpR, s.GateB, 10)

	ep := moved.endpoint()
	if _, err := d.api.Update(ctx(t), s.ID, switchboard.UpdateRequest{B: &ep}); err != nil {
		t.Fatalf("update after restart: %v", err)
	}
	a.send(t, s.GateA, 10, false)
	expect(t, "moved callee after the restart", moved.rtpR, s.GateB, 10)

	if err := d.api.Delete(ctx(t), s.ID); err != nil {
		t.Fatalf("delete after restart: %v", err)
	}
	if l := nftTable(t, lab); hasElements(l) {
		t.Errorf("elements left after deleting the restored session:\n%s", l)
	}
	if flows := relayFlows(t, lab); len(flows) != 0 {
		t.Errorf("relay flows left:\n%s", strings.Join(flows, "\n"))
	}
}

// A re-INVITE right after a restart moves the callee to another port of
// its host while the old port's flow still exists (the gate learns again,
// and only a new flow teaches the kernel). The restart's scan of the
// flows that exist comes after the update: it must not teach the old
// port, or the caller's media goes back there and the moved callee gets
// none of it.
func TestRestartScanDoesNotTeachTheCalleesOldPort(t *testing.T) {
	_, d, a, b, moved, s := learnedCall(t, 5, false)
	d.kill()
	d.start()
	b.send(t, s.GateB, 5, false)
	expect(t, "caller after the restart", a.rtpR, s.GateA, 5)
	ep := moved.endpoint()
	if _, err := d.api.Update(ctx(t), s.ID, switchboard.UpdateRequest{B: &ep}); err != nil {
		t.Fatalf("update after restart: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // the scan runs 200 ms after the watch subscribed
	b.rtpR.Reset()
	a.send(t, s.GateA, 10, false)
	expect(t, "moved callee after the scan", moved.rtpR, s.GateB, 10)
	if n := b.rtpR.Count(); n != 0 {
		t.Errorf("the old port got %d packets after the move", n)
	}
	got, err := d.api.Show(ctx(t), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.B.Learned.RTP.IsValid() {
		t.Errorf("the callee is learned as %s before it sent from its new port", got.B.Learned.RTP)
	}
}

// learnedCall is startCall with a second callee socket on another port
// of the callee's host (moved, 5010) for a re-INVITE. The caller sends n packets (and RTCP with rtcp), the callee receives them,
// and the session has learned the caller.
func learnedCall(t *testing.T, n int, rtcp bool) (*netlab.Lab, *daemon, *peer, *peer, *peer, *switchboard.Session) {
	t.Helper()
	lab, d, a, b, s := startCall(t)
	moved := newPeer(t, lab.Callee, lab.CalleeAddr, 5010)
	a.send(t, s.GateA, n, rtcp)
	expect(t, "callee before the daemon is killed", b.rtpR, s.GateB, n)
	waitLearned(t, d, s.ID, func(x *switchboard.Session) bool { return x.A.Learned.RTP == a.addr })
	return lab, d, a, b, moved, s
}
