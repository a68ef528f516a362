package switchboard

import (
	"context"
	"errors"
	"testing"
)

func TestAllocPortsTakesExactlyThePortsAskedFor(t *testing.T) {
	h := newHarness(t, "")
	s, err := h.m.AllocPorts(context.Background(), AllocRequest{Switchboard: "edge", A: ep("192.0.2.10:4000")}, 30002, 30000)
	if err != nil {
		t.Fatal(err)
	}
	if s.GateA != ap("192.0.2.1:30002") || s.GateB != ap("10.0.0.1:30000") {
		t.Fatalf("gates %s, %s; want 192.0.2.1:30002 and 10.0.0.1:30000", s.GateA, s.GateB)
	}
	if n := len(legsOf(t, h.mem)); n != 4 {
		t.Errorf("%d legs installed, want 4", n)
	}
	// The round-robin allocator skips the claimed pairs.
	other := h.alloc(t, AllocRequest{})
	if other.GateA.Port() != 30000 || other.GateB.Port() != 30002 {
		t.Errorf("next Alloc got %s, %s; want the pairs AllocPorts left free", other.GateA, other.GateB)
	}
}

func TestAllocPortsRefusesBadOrTakenPortsAndChangesNothing(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	if _, err := h.m.AllocPorts(ctx, AllocRequest{Switchboard: "edge"}, 30000, 30000); err != nil {
		t.Fatal(err)
	}
	before := len(legsOf(t, h.mem))
	for _, c := range []struct {
		name   string
		sb     string
		pa, pb uint16
		want   error
	}{
		{"a pair another session holds on gate-a", "edge", 30000, 30002, ErrPortInUse},
		{"a pair another session holds on gate-b", "edge", 30002, 30000, ErrPortInUse},
		{"an odd port", "edge", 30001, 30002, ErrInvalid},
		{"a port outside the range", "edge", 30002, 31000, ErrInvalid},
		{"an unknown switchboard", "nope", 30002, 30002, ErrUnknownSwitchboard},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.m.AllocPorts(ctx, AllocRequest{Switchboard: c.sb}, c.pa, c.pb)
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
	if n := len(h.m.List()); n != 1 {
		t.Errorf("%d sessions, want the first one only", n)
	}
	if after := len(legsOf(t, h.mem)); after != before {
		t.Errorf("%d legs after refused requests, want %d", after, before)
	}
	// Refusals released what they had claimed: the free pair still works.
	if _, err := h.m.AllocPorts(ctx, AllocRequest{Switchboard: "edge"}, 30002, 30002); err != nil {
		t.Fatalf("free pair after refusals: %v", err)
	}
}

func TestAllocPortsReleasesItsPortsWhenTheKernelFails(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	h.mem.FailNext(errors.New("boom"))
	if _, err := h.m.AllocPorts(ctx, AllocRequest{Switchboard: "edge"}, 30000, 30000); err == nil {
		t.Fatal("AllocPorts succeeded although the kernel failed")
	}
	if _, err := h.m.AllocPorts(ctx, AllocRequest{Switchboard: "edge"}, 30000, 30000); err != nil {
		t.Fatalf("the same ports after a kernel failure: %v", err)
	}
}
