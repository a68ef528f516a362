//go:build linux && integration

package integration

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/internal/daemonconfig"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
)

// The Manager deletes a changed leg's flows by tuple, and only those it has
// seen; a flow it has not seen yet (its event still queued when the leg
// changed) must be deleted when it is seen. Here the Manager's watch is not
// running while media flows, so a delete removes the session's elements
// but finds no flow to delete: media keeps being forwarded by conntrack.
// Once the watch runs, its first scan sees the orphaned flows and deletes
// them, and media stops. The conntrack CLI is the oracle.
func TestUnseenFlowsOfADeletedSessionAreDeletedWhenSeen(t *testing.T) {
	lab := newLab(t)
	ns, err := os.Open(lab.Router.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	cfg, err := daemonconfig.Parse([]byte(labConfig(lab, t.TempDir(), "")))
	if err != nil {
		t.Fatal(err)
	}
	m, dp, _ := startManager(t, int(ns.Fd()), cfg.Config, nil)
	defer dp.Close()
	defer m.Close()
	a := newPeer(t, lab.Caller, lab.CallerAddr, 4000)
	b := newPeer(t, lab.Callee, lab.CalleeAddr, 5000)
	s, err := m.Alloc(ctx(t), switchboard.AllocRequest{Switchboard: "edge", A: a.endpoint(), B: b.endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	a.send(t, s.GateA, 10, false)
	expect(t, "callee RTP", b.rtpR, s.GateB, 10)
	if err := m.Delete(ctx(t), s.ID); err != nil {
		t.Fatal(err)
	}
	if flows := relayFlows(t, lab); len(flows) != 1 {
		t.Fatalf("flows after a delete that saw none: %q, want the caller's one still there", flows)
	}
	b.rtpR.Reset()
	a.send(t, s.GateA, 5, false)
	expect(t, "callee RTP through the orphaned flow", b.rtpR, s.GateB, 5)

	run, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(run) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(relayFlows(t, lab)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("flows 5 s after the watch started: %q, want none", relayFlows(t, lab))
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.rtpR.Reset()
	a.send(t, s.GateA, 5, false)
	expectNothing(t, "callee after the orphaned flow was deleted", b.rtpR)
}
