package switchboard

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

func TestLegWithoutSeenFlowsChangesWithoutTouchingConntrack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), Ringing: true})
	if _, err := h.m.Update(ctx, s.ID, UpdateRequest{B: epp("10.0.0.10:5000"), Answer: true}); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Delete(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if got, del := h.mem.Flushed(), h.mem.Deleted(); len(got)+len(del) != 0 {
		t.Errorf("flushed marks %x and deleted flows %v, want neither: no flow was ever seen", got, del)
	}
}

func TestLateFlowOfAChangedLegIsDeletedWhenSeen(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	if _, err := h.m.Update(ctx, s.ID, UpdateRequest{B: epp("10.0.0.11:6000")}); err != nil {
		t.Fatal(err)
	}
	// A flow created before the update towards the old b, reported after it.
	late := flow(s, legARTP, "192.0.2.10:4000")
	late.Peer = ap("10.0.0.10:5000")
	current := late // its successor, after late was deleted
	current.Peer = ap("10.0.0.11:6000")
	h.m.Learn(h.mem.NewFlow(late))
	h.m.Learn(h.mem.NewFlow(current))
	if diff := cmp.Diff([]relay.Flow{late}, h.mem.Deleted(), addrs); diff != "" {
		t.Errorf("deleted flows (-want +got):\n%s", diff)
	}
	if err := h.m.Delete(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]relay.Flow{late, current}, h.mem.Deleted(), addrs); diff != "" {
		t.Errorf("deleted flows after delete (-want +got):\n%s", diff)
	}
}

func TestFlowOfAGoneSessionIsDeletedWhenSeen(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	if err := h.m.Delete(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	late := flow(s, legBRTCP, "10.0.0.10:5001")
	h.m.Learn(h.mem.NewFlow(late))
	// The media timeout's dump deletes what it finds stale as well.
	dumped := flow(s, legARTP, "192.0.2.10:4000")
	h.mem.SetFlows(dumped)
	h.m.checkMedia(ctx)
	if diff := cmp.Diff([]relay.Flow{late, dumped}, h.mem.Deleted(), addrs); diff != "" {
		t.Errorf("deleted flows (-want +got):\n%s", diff)
	}
}

func TestFlowsSeenInTheMediaDumpAreDeletedWithTheirLeg(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "media-timeout = 30\n")
	ctx := context.Background()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	f := flow(s, legBRTP, "10.0.0.10:5000")
	h.mem.SetFlows(f)
	h.m.checkMedia(ctx)
	if err := h.m.Delete(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]relay.Flow{f}, h.mem.Deleted(), addrs); diff != "" {
		t.Errorf("deleted flows (-want +got):\n%s", diff)
	}
}

func TestUnknownFlowsAreFlushedByMark(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "always-learn-a = true\n")
	ctx := context.Background()
	restored := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	if err := h.m.Close(); err != nil {
		t.Fatal(err)
	}
	h.start(t, "always-learn-a = true\n")

	// After a restart the flows of a run that is gone were never seen.
	if err := h.m.Delete(ctx, restored.ID); err != nil {
		t.Fatal(err)
	}
	marks := func(s *Session, legs ...uint32) []uint32 {
		var out []uint32
		for _, k := range legs {
			out = append(out, relay.Mark(4*s.Index+k))
		}
		return out
	}
	if diff := cmp.Diff(marks(restored, 0, 1, 2, 3), h.mem.Flushed()); diff != "" {
		t.Errorf("flushed after a restart (-want +got):\n%s", diff)
	}

	// More flows on one leg than are remembered: that leg is flushed by
	// mark, the others as before.
	busy := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4002"), B: ep("10.0.0.10:5002")})
	flushed := len(h.mem.Flushed())
	for i := range maxLegFlows + 1 {
		h.m.Learn(h.mem.NewFlow(flow(busy, legARTP, fmt.Sprintf("198.51.100.7:%d", 60000+i))))
	}
	if err := h.m.Delete(ctx, busy.ID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(marks(busy, legARTP), h.mem.Flushed()[flushed:]); diff != "" {
		t.Errorf("flushed after too many flows (-want +got):\n%s", diff)
	}
}

func TestChangeStandsWhenItsStaleFlowsCannotBeDeleted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	h.m.Learn(h.mem.NewFlow(flow(s, legARTP, "192.0.2.10:4000")))
	h.mem.FailFlowsNext()
	got, err := h.m.Update(ctx, s.ID, UpdateRequest{B: epp("10.0.0.11:6000")})
	if err != nil {
		t.Fatalf("Update: %v, want the committed change to stand", err)
	}
	if l := h.leg(t, s, legARTP); l.Peer != ap("10.0.0.11:6000") || got.B.Signalled.RTP != ap("10.0.0.11:6000") {
		t.Errorf("a-rtp sends to %s, session's b %s: want both the new b", l.Peer, got.B.Signalled.RTP)
	}
	// The legs whose flows may remain are flushed by mark when they go.
	flushed := len(h.mem.Flushed())
	if err := h.m.Delete(ctx, s.ID); err != nil {
		t.Fatalf("Delete after a partial failure: %v", err)
	}
	want := []uint32{relay.Mark(4 * s.Index), relay.Mark(4*s.Index + 1)}
	if diff := cmp.Diff(want, h.mem.Flushed()[flushed:]); diff != "" {
		t.Errorf("flushed by mark (-want +got):\n%s", diff)
	}
}

func TestEndedFlowsCountersStayWithTheirSession(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	live := flow(s, legARTP, "192.0.2.10:4000")
	live.Packets, live.Bytes = 5, 500
	h.mem.SetFlows(live)
	ended := live
	ended.Ended, ended.Packets, ended.Bytes = true, 20, 2000
	h.m.Learn(h.mem.NewFlow(ended))
	intoOtherGate := ended // not this leg's: its counters are not the session's
	intoOtherGate.Dst = ap("192.0.2.1:30003")
	h.m.Learn(h.mem.NewFlow(intoOtherGate))
	counted := func(when string) {
		t.Helper()
		d, err := h.m.Show(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range d.Legs {
			want := Counters{}
			if i == legARTP {
				want = Counters{Packets: 25, Bytes: 2500} // ended 20 + live 5
			}
			if got := (Counters{Packets: l.Packets, Bytes: l.Bytes}); got != want {
				t.Errorf("%s: leg %s counts %+v, want %+v", when, l.Name, got, want)
			}
		}
	}
	counted("after the flow ended")
	h.start(t, "")
	counted("after a restart")
	if err := h.m.Delete(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	h.m.Learn(h.mem.NewFlow(ended)) // of a session that is gone: ignored
	if n := len(h.m.List()); n != 0 {
		t.Errorf("%d sessions after the delete, want none", n)
	}
}

func TestShowReadsTheWatchedFlowsByTupleWithoutWalkingTheTable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); !h.m.watching.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the watch did not read the existing flows within 10 s")
		}
	}
	seen := flow(s, legARTP, "192.0.2.10:4000")
	h.m.Learn(h.mem.NewFlow(seen))
	now := seen
	now.Packets, now.Bytes = 7, 700
	h.mem.SetFlows(now)
	dumps := h.mem.Dumps()
	d, err := h.m.Show(context.Background(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := h.mem.Dumps() - dumps; n != 0 {
		t.Errorf("Show dumped the conntrack table %d times, want none: every leg's flows are known", n)
	}
	if l := d.Legs[legARTP]; l.Flows != 1 || l.Packets != 7 || l.Bytes != 700 {
		t.Errorf("a-rtp shows %d flows, %d packets, %d bytes; want the looked-up flow's 1, 7, 700", l.Flows, l.Packets, l.Bytes)
	}
	h.m.mu.Lock()
	h.m.sessions[s.ID].unknownFlows = 1 << legBRTP
	h.m.mu.Unlock()
	if _, err := h.m.Show(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	if n := h.mem.Dumps() - dumps; n != 1 {
		t.Errorf("Show dumped %d times with one leg's flows unknown, want once", n)
	}
}
