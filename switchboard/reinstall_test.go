package switchboard

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

func TestReinstallPutsEverySessionBackAfterTheTableWasEmptied(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	for _, r := range []AllocRequest{
		{Switchboard: "edge", A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")},
		{Switchboard: "edge", A: ep("192.0.2.11:4000")},
	} {
		if _, err := h.m.Alloc(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	want := legsOf(t, h.mem)
	// Someone else empties the table (what a flush ruleset leaves the
	// daemon to find): every leg is gone.
	if _, err := h.mem.Apply(ctx, relay.Batch{Remove: want}); err != nil {
		t.Fatal(err)
	}
	h.mem.Foreign()
	n, err := h.m.Reinstall(ctx, errors.New("table gone"))
	if err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Errorf("Reinstall reports %d legs added, want %d", n, len(want))
	}
	if diff := diffLegsOf(t, want, legsOf(t, h.mem)); diff != "" {
		t.Errorf("legs after reinstalling (-want +got):\n%s", diff)
	}
	if len(h.mem.Gates()) != 2 {
		t.Errorf("gates after reinstalling: %v, want the edge's two", h.mem.Gates())
	}
	// An intact table costs no change.
	before := h.mem.Applied()
	if n, err := h.m.Reinstall(ctx, errors.New("checking")); err != nil || n != 0 || h.mem.Applied() != before {
		t.Errorf("Reinstall of an intact table: %d legs, %v, %d batches applied; want none", n, err, h.mem.Applied()-before)
	}
}

// CheckSample hands the check the legs the kernel holds of up to n
// sessions, whole sessions at a time, and its error back.
func TestCheckSampleHandsOverInstalledLegsOfUpToNSessions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	called := false
	if err := h.m.CheckSample(ctx, 2, func(context.Context, []relay.Leg) error { called = true; return nil }); err != nil || called {
		t.Fatalf("with no session: %v, check called %v; want nil, not called", err, called)
	}
	for i := range 2 { // the edge has two port pairs
		if _, err := h.m.Alloc(ctx, AllocRequest{Switchboard: "edge", A: ep(fmt.Sprintf("192.0.2.10:%d", 4000+2*i)), B: ep("10.0.0.10:5000")}); err != nil {
			t.Fatal(err)
		}
	}
	installed := map[uint32]relay.Leg{}
	for _, l := range legsOf(t, h.mem) {
		installed[l.Mark] = l
	}
	missing := errors.New("missing")
	err := h.m.CheckSample(ctx, 1, func(_ context.Context, legs []relay.Leg) error {
		if len(legs) != legsPerSession {
			t.Errorf("%d legs, want those of 1 session (%d)", len(legs), legsPerSession)
		}
		for _, l := range legs {
			if diff := diffLegsOf(t, []relay.Leg{installed[l.Mark]}, []relay.Leg{l}); diff != "" {
				t.Errorf("leg %x is not the installed one (-kernel +sample):\n%s", l.Mark, diff)
			}
		}
		return missing
	})
	if !errors.Is(err, missing) {
		t.Errorf("CheckSample returned %v, want the check's error", err)
	}
}
