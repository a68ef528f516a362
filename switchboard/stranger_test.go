package switchboard

import (
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

// A stranger's flow that raced the lock (its new-flow event arrives after
// the gate was locked to someone else) is deleted by its tuple; the locked
// source's flows are kept, and no whole-leg flush happens.
func TestStrangerFlowThatRacedTheLockIsDeleted(t *testing.T) {
	h := newHarnessLearning(t, LearnAny, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	mark := relay.Mark(4 * s.Index)
	first := relay.Flow{Mark: mark, Zone: relay.ZoneA, Src: ap("198.51.100.7:61000"), Dst: s.GateA}
	stranger := relay.Flow{Mark: mark, Zone: relay.ZoneA, Src: ap("203.0.113.9:1234"), Dst: s.GateA}
	h.m.Learn(h.mem.NewFlow(first))
	flushed := len(h.mem.Flushed())
	h.m.Learn(h.mem.NewFlow(stranger))
	if got := h.mem.Deleted(); len(got) != 1 || got[0] != stranger {
		t.Errorf("deleted %v, want only the stranger's flow", got)
	}
	if got := h.mem.Flushed()[flushed:]; len(got) != 0 {
		t.Errorf("flushed marks %x for a stranger, want none", got)
	}
	h.m.Learn(h.mem.NewFlow(first)) // the locked source again: nothing to delete
	if got := h.mem.Deleted(); len(got) != 1 {
		t.Errorf("deleted %d flows, want 1", len(got))
	}
}
