//go:build linux && integration

package integration

import (
	"context"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// A re-INVITE that moves the callee deletes the conntrack entries of the
// caller's legs, and with them the kernel's counters: the session keeps
// what they counted (the kernel's destroy events carry the final
// counters), also across a restart.
func TestCountersSurviveRepointAndRestart(t *testing.T) {
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
	expect(t, "callee RTP", old.rtpR, s.GateB, 20)
	expect(t, "callee RTCP", old.rtcpR, gateRTCP(s.GateB), 20)
	ep := moved.endpoint()
	if _, err := d.api.Update(ctx(t), s.ID, switchboard.UpdateRequest{B: &ep}); err != nil {
		t.Fatal(err)
	}
	if got := relayFlows(t, lab); len(got) != 0 {
		t.Fatalf("relay flows after the move: %q, want none (the caller's legs were re-pointed)", got)
	}
	waitCounted(t, d, s.ID, 20, 0)
	a.send(t, s.GateA, 10, true)
	expect(t, "moved callee RTP", moved.rtpR, s.GateB, 10)
	waitCounted(t, d, s.ID, 30, 1)
	d.kill()
	d.start()
	waitCounted(t, d, s.ID, 30, 1)
}

// waitCounted waits until both caller legs (a-rtp, a-rtcp) of session id
// count packets over flows live conntrack entries each.
func waitCounted(t *testing.T, d *daemon, id string, packets uint64, flows int) {
	t.Helper()
	var det *switchboard.Details
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		x, err := d.api.Show(c, id)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		det = x
		ok := true
		for _, l := range det.Legs {
			if (l.Name == "a-rtp" || l.Name == "a-rtcp") && (l.Packets != packets || l.Flows != flows || l.Bytes == 0) {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("caller legs: %+v, want %d packets (and bytes) over %d flows each", det.Legs, packets, flows)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
