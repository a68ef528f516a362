package switchboard

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
)

// v6 is a second switchboard for the harness: IPv6 gates on one address.
const v6 = `[[switchboard]]
name = "v6"
gate-a = { name = "outside6", address = "2001:db8::1", ports = "40000-40003" }
gate-b = { name = "inside6", address = "2001:db8::1", ports = "40004-40007" }
`

func TestAllocInstallsFourLegsAcrossTheGates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		req  AllocRequest
		want []relay.Leg // of the first session (index 1): marks 4..7
		// allowed are the learning sources of each leg: while learning,
		// each gate takes new flows only from its side's signalled IP.
		allowed [4]string
	}{{
		name: "RTCP goes to the next port of each peer",
		req:  AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")},
		want: []relay.Leg{
			{Gate: ap("192.0.2.1:30000"), Peer: ap("10.0.0.10:5000"), Source: ap("10.0.0.1:30000")},
			{Gate: ap("192.0.2.1:30001"), Peer: ap("10.0.0.10:5001"), Source: ap("10.0.0.1:30001")},
			{Gate: ap("10.0.0.1:30000"), Peer: ap("192.0.2.10:4000"), Source: ap("192.0.2.1:30000")},
			{Gate: ap("10.0.0.1:30001"), Peer: ap("192.0.2.10:4001"), Source: ap("192.0.2.1:30001")},
		},
		allowed: [4]string{"192.0.2.10", "192.0.2.10", "10.0.0.10", "10.0.0.10"},
	}, {
		name: "an explicit RTCP address is used as it is",
		req:  AllocRequest{A: ep("192.0.2.10:4000"), B: Endpoint{RTP: ap("10.0.0.10:5000"), RTCP: ap("10.0.0.11:7009")}},
		want: []relay.Leg{
			{Gate: ap("192.0.2.1:30000"), Peer: ap("10.0.0.10:5000"), Source: ap("10.0.0.1:30000")},
			{Gate: ap("192.0.2.1:30001"), Peer: ap("10.0.0.11:7009"), Source: ap("10.0.0.1:30001")},
			{Gate: ap("10.0.0.1:30000"), Peer: ap("192.0.2.10:4000"), Source: ap("192.0.2.1:30000")},
			{Gate: ap("10.0.0.1:30001"), Peer: ap("192.0.2.10:4001"), Source: ap("192.0.2.1:30001")},
		},
		allowed: [4]string{"192.0.2.10", "192.0.2.10", "10.0.0.10", "10.0.0.11"},
	}, {
		name: "legs towards an unknown or held peer have no peer",
		req:  AllocRequest{B: ep("0.0.0.0:5000")},
		want: []relay.Leg{
			{Gate: ap("192.0.2.1:30000"), Source: ap("10.0.0.1:30000")},
			{Gate: ap("192.0.2.1:30001"), Source: ap("10.0.0.1:30001")},
			{Gate: ap("10.0.0.1:30000"), Source: ap("192.0.2.1:30000")},
			{Gate: ap("10.0.0.1:30001"), Source: ap("192.0.2.1:30001")},
		},
		allowed: [4]string{},
	}, {
		name: "an IPv6 switchboard's gates share their address",
		req:  AllocRequest{Switchboard: "v6", A: ep("[2001:db8:a::10]:4000"), B: ep("[2001:db8:b::10]:5000")},
		want: []relay.Leg{
			{Gate: ap("[2001:db8::1]:40000"), Peer: ap("[2001:db8:b::10]:5000"), Source: ap("[2001:db8::1]:40004")},
			{Gate: ap("[2001:db8::1]:40001"), Peer: ap("[2001:db8:b::10]:5001"), Source: ap("[2001:db8::1]:40005")},
			{Gate: ap("[2001:db8::1]:40004"), Peer: ap("[2001:db8:a::10]:4000"), Source: ap("[2001:db8::1]:40000")},
			{Gate: ap("[2001:db8::1]:40005"), Peer: ap("[2001:db8:a::10]:4001"), Source: ap("[2001:db8::1]:40001")},
		},
		allowed: [4]string{"2001:db8:a::10", "2001:db8:a::10", "2001:db8:b::10", "2001:db8:b::10"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, v6)
			s := h.alloc(t, tc.req)
			for k := range tc.want {
				tc.want[k].Mark = relay.Mark(4*s.Index + uint32(k))
				tc.want[k].Learn, tc.want[k].Guard = true, true
				if a := tc.allowed[k]; a != "" {
					tc.want[k].Allowed = relay.Allow(mustAddr(a))
				}
			}
			if s.Index != 1 {
				t.Errorf("index %d, want 1", s.Index)
			}
			if diff := diffLegsOf(t, tc.want, legsOf(t, h.mem)); diff != "" {
				t.Errorf("legs (-want +got):\n%s", diff)
			}
			if s.GateA != tc.want[0].Gate || s.GateB != tc.want[2].Gate {
				t.Errorf("session gates %s, %s; want %s, %s", s.GateA, s.GateB, tc.want[0].Gate, tc.want[2].Gate)
			}
		})
	}
}

func TestAllocOpensLearningOrRinging(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "learning-timeout-b = 3\nringing-timeout = 20\n")
	now := h.clk.Now()
	active := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), Labels: map[string]string{"call-id": "c1"}})
	want := &Session{ID: active.ID, Switchboard: "edge", Index: 1,
		GateA: ap("192.0.2.1:30000"), GateB: ap("10.0.0.1:30000"),
		A:     Peer{Signalled: ep("192.0.2.10:4000"), LearnUntil: now.Add(10 * time.Second)},
		B:     Peer{LearnUntil: now.Add(3 * time.Second)},
		State: Active, Created: now, Updated: now, Labels: map[string]string{"call-id": "c1"}}
	if diff := cmp.Diff(want, active, addrs); diff != "" {
		t.Errorf("active session (-want +got):\n%s", diff)
	}
	ringing := h.alloc(t, AllocRequest{Ringing: true})
	deadline := now.Add(20 * time.Second)
	if ringing.State != Ringing || !ringing.Expires.Equal(deadline) ||
		!ringing.A.LearnUntil.Equal(deadline) || !ringing.B.LearnUntil.Equal(deadline) {
		t.Errorf("ringing session: state %s, expires %v, learning until %v and %v; want all at %v",
			ringing.State, ringing.Expires, ringing.A.LearnUntil, ringing.B.LearnUntil, deadline)
	}
}

func TestRefusedAllocsChangeNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	first := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	for _, tc := range []struct {
		name string
		req  AllocRequest
		is   error
		want string
	}{
		{"an unknown switchboard", AllocRequest{Switchboard: "nope"}, ErrUnknownSwitchboard, `switchboard "nope": no such switchboard`},
		{"an IPv6 peer on IPv4 gates", AllocRequest{Switchboard: "edge", A: ep("[2001:db8::10]:4000")}, ErrInvalid,
			`switchboard "edge": invalid request: a [2001:db8::10]:4000: address family differs from the switchboard's gates (192.0.2.1)`},
		{"an IPv6 RTCP address beside IPv4 RTP", AllocRequest{Switchboard: "edge", B: Endpoint{RTP: ap("10.0.0.10:5000"), RTCP: ap("[2001:db8::10]:5001")}}, ErrInvalid,
			`switchboard "edge": invalid request: b [2001:db8::10]:5001: address family differs from the switchboard's gates (10.0.0.1)`},
		{"an IPv4-mapped IPv6 peer", AllocRequest{Switchboard: "edge", A: ep("[::ffff:192.0.2.10]:4000")}, ErrInvalid,
			`switchboard "edge": invalid request: a [::ffff:192.0.2.10]:4000: address family differs from the switchboard's gates (192.0.2.1)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := legsOf(t, h.mem)
			_, err := h.m.Alloc(ctx, tc.req)
			if !errors.Is(err, tc.is) {
				t.Errorf("error %v, want %v", err, tc.is)
			}
			if diff := cmp.Diff(tc.want, errString(err)); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			if diff := diffLegsOf(t, before, legsOf(t, h.mem)); diff != "" {
				t.Errorf("legs changed (-before +after):\n%s", diff)
			}
		})
	}
	if diff := cmp.Diff([]*Session{first}, h.m.List(), addrs); diff != "" {
		t.Errorf("sessions (-want +got):\n%s", diff)
	}
}

func TestExhaustedPortsLeaveExistingSessionsAlone(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	h.alloc(t, AllocRequest{A: ep("192.0.2.10:4002"), B: ep("10.0.0.10:5002")})
	legs, sessions, applied := legsOf(t, h.mem), h.m.List(), h.mem.Applied()
	_, err := h.m.Alloc(context.Background(), AllocRequest{Switchboard: "edge"})
	if !errors.Is(err, ErrPortsExhausted) {
		t.Fatalf("error %v, want ErrPortsExhausted", err)
	}
	if diff := cmp.Diff(`switchboard "edge": gate-a 192.0.2.1 ports 30000-30003: no free port pair`, err.Error()); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
	if len(legs) != 8 || h.mem.Applied() != applied {
		t.Errorf("%d legs before, %d batches applied by the refused alloc", len(legs), h.mem.Applied()-applied)
	}
	if diff := diffLegsOf(t, legs, legsOf(t, h.mem)); diff != "" {
		t.Errorf("legs (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(sessions, h.m.List(), addrs); diff != "" {
		t.Errorf("sessions (-before +after):\n%s", diff)
	}
}

func TestAnExhaustedGateBReleasesGateA(t *testing.T) {
	t.Parallel()
	h := &harness{mem: relaytest.NewMemory(), clk: &clock{}, dir: t.TempDir()}
	h.startWith(t, `state-dir = "`+h.dir+`"
[[switchboard]]
name = "edge"
gate-a = { address = "192.0.2.1", ports = "30000-30007" }
gate-b = { address = "10.0.0.1", ports = "30000-30001" }
`)
	s := h.alloc(t, AllocRequest{})
	_, err := h.m.Alloc(context.Background(), AllocRequest{Switchboard: "edge"})
	if diff := cmp.Diff(`switchboard "edge": gate-b 10.0.0.1 ports 30000-30001: no free port pair`, errString(err)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if free := h.m.boards["edge"].a.free; free != 3 {
		t.Errorf("gate-a has %d free pairs, want 3: the refused alloc kept one", free)
	}
	if err := h.m.Delete(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	h.alloc(t, AllocRequest{})
}

func TestAKernelFailureLeavesSessionsLegsAndPortsAsTheyWere(t *testing.T) {
	t.Parallel()
	injected := errors.New("injected")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		do   func(m *Manager, id string) error
	}{
		{"alloc", func(m *Manager, _ string) error {
			_, err := m.Alloc(ctx, AllocRequest{Switchboard: "edge", A: ep("192.0.2.10:4002")})
			return err
		}},
		{"update", func(m *Manager, id string) error {
			_, err := m.Update(ctx, id, UpdateRequest{B: epp("10.0.0.11:6000")})
			return err
		}},
		{"adjust-timeout", func(m *Manager, id string) error { _, err := m.AdjustTimeout(ctx, id, Active); return err }},
		{"delete", func(m *Manager, id string) error { return m.Delete(ctx, id) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, "")
			s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000"), Ringing: true})
			legs, flushed := legsOf(t, h.mem), h.mem.Flushed()
			h.mem.FailNext(injected)
			if err := tc.do(h.m, s.ID); !errors.Is(err, injected) {
				t.Fatalf("error %v, want the kernel's", err)
			}
			if diff := cmp.Diff([]*Session{s}, h.m.List(), addrs); diff != "" {
				t.Errorf("sessions (-before +after):\n%s", diff)
			}
			if diff := diffLegsOf(t, legs, legsOf(t, h.mem)); diff != "" {
				t.Errorf("legs (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(flushed, h.mem.Flushed()); diff != "" {
				t.Errorf("flushed (-before +after):\n%s", diff)
			}
			// The other pair of each gate is still free.
			if n := h.alloc(t, AllocRequest{}); n.GateA.Port() != 30002 || n.GateB.Port() != 30002 {
				t.Errorf("next alloc got %s, %s; want the free pair 30002", n.GateA, n.GateB)
			}
		})
	}
}

func TestAJournalFailureRollsTheKernelBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	legs := legsOf(t, h.mem)
	h.m.j.f.Close() // every later write fails
	if _, err := h.m.Alloc(context.Background(), AllocRequest{Switchboard: "edge"}); err == nil {
		t.Fatal("alloc succeeded without a journal")
	}
	if _, err := h.m.Update(context.Background(), s.ID, UpdateRequest{B: epp("10.0.0.10:5000")}); err == nil {
		t.Fatal("update succeeded without a journal")
	}
	if diff := diffLegsOf(t, legs, legsOf(t, h.mem)); diff != "" {
		t.Errorf("legs (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff([]*Session{s}, h.m.List(), addrs); diff != "" {
		t.Errorf("sessions (-before +after):\n%s", diff)
	}
	if free := h.m.boards["edge"].a.free; free != 1 {
		t.Errorf("gate-a has %d free pairs, want 1", free)
	}
}

func TestUpdateRepointsAndDeletesTheFlowsOfOnlyTheChangedLegs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000"), Labels: map[string]string{"call-id": "c1"}})
	fromB := flow(s, legBRTP, "10.0.0.99:7000")
	h.m.Learn(h.mem.NewFlow(fromB))
	fromA := flow(s, legARTP, "192.0.2.10:4000")
	h.m.Learn(h.mem.NewFlow(fromA))
	h.clk.advance(time.Second)
	flushed, deleted := len(h.mem.Flushed()), len(h.mem.Deleted())
	got, err := h.m.Update(ctx, s.ID, UpdateRequest{B: epp("10.0.0.11:6000"), Labels: map[string]string{"to-tag": "t1"}})
	if err != nil {
		t.Fatal(err)
	}
	// a-rtp and a-rtcp send to the new b; b-rtp loses its lock to the
	// source b was learned from; b-rtcp learned nothing and stays. The
	// flow seen on a-rtp is deleted by tuple and no table is walked; b's
	// flow stays, as a lock change alone keeps flows.
	if diff := cmp.Diff([]relay.Flow{fromA}, h.mem.Deleted()[deleted:], addrs); diff != "" {
		t.Errorf("deleted flows (-want +got):\n%s", diff)
	}
	if got := h.mem.Flushed()[flushed:]; len(got) != 0 {
		t.Errorf("flushed marks %x, want none: every flow was known", got)
	}
	if l := h.leg(t, s, legARTP); l.Peer != ap("10.0.0.11:6000") {
		t.Errorf("a-rtp sends to %s, want the new b", l.Peer)
	}
	if l := h.leg(t, s, legARTCP); l.Peer != ap("10.0.0.11:6001") {
		t.Errorf("a-rtcp sends to %s, want the new b's RTCP", l.Peer)
	}
	wantB := Peer{Signalled: ep("10.0.0.11:6000"), LearnUntil: h.clk.Now().Add(10 * time.Second)}
	if diff := cmp.Diff(wantB, got.B, addrs); diff != "" {
		t.Errorf("b forgets what it learned and learns again (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"call-id": "c1", "to-tag": "t1"}, got.Labels); diff != "" {
		t.Errorf("labels are merged (-want +got):\n%s", diff)
	}

	// Putting a on hold with the same address changes no leg.
	flushed, legs := len(h.mem.Flushed()), legsOf(t, h.mem)
	held := Endpoint{RTP: ap("192.0.2.10:4000"), Hold: true}
	if got, err = h.m.Update(ctx, s.ID, UpdateRequest{A: &held}); err != nil || !got.A.Signalled.Hold {
		t.Fatalf("hold: %v, %+v", err, got.A)
	}
	if diff := diffLegsOf(t, legs, legsOf(t, h.mem)); diff != "" || len(h.mem.Flushed()) != flushed {
		t.Errorf("hold changed the legs (-before +after):\n%s", diff)
	}
}

func TestRefusedUpdatesChangeNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	for _, tc := range []struct {
		name, id string
		req      UpdateRequest
		is       error
		want     string
	}{
		{"an unknown id", "nope", UpdateRequest{}, ErrNotFound, `session "nope": no such session`},
		{"a peer of the wrong family", s.ID, UpdateRequest{B: epp("[2001:db8::10]:5000")}, ErrInvalid,
			`session ` + s.ID + `: switchboard "edge": invalid request: b [2001:db8::10]:5000: address family differs from the switchboard's gates (10.0.0.1)`},
	} {
		_, err := h.m.Update(context.Background(), tc.id, tc.req)
		if !errors.Is(err, tc.is) || errString(err) != tc.want {
			t.Errorf("%s: error %v, want %q (%v)", tc.name, err, tc.want, tc.is)
		}
	}
	if diff := cmp.Diff([]*Session{s}, h.m.List(), addrs); diff != "" {
		t.Errorf("sessions (-want +got):\n%s", diff)
	}
}

func TestAdjustTimeoutSwitchesBetweenRingingAndActive(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "ringing-timeout = 30\n")
	ctx := context.Background()
	s := h.alloc(t, AllocRequest{Ringing: true})
	h.clk.advance(5 * time.Second)
	now := h.clk.Now()
	got, err := h.m.AdjustTimeout(ctx, s.ID, Active)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != Active || !got.Expires.IsZero() || !got.A.LearnUntil.Equal(now.Add(10*time.Second)) || !got.Updated.Equal(now) {
		t.Errorf("answered: state %s, expires %v, learning until %v, updated %v", got.State, got.Expires, got.A.LearnUntil, got.Updated)
	}
	if got, err = h.m.AdjustTimeout(ctx, s.ID, Ringing); err != nil || got.State != Ringing || !got.Expires.Equal(now.Add(30*time.Second)) {
		t.Errorf("back to ringing: %v, state %s, expires %v", err, got.State, got.Expires)
	}
	for _, tc := range []struct {
		id   string
		to   State
		is   error
		want string
	}{
		{s.ID, "later", ErrInvalid, `session ` + s.ID + `: invalid request: timeout "later" is neither "ringing" nor "active"`},
		{"nope", Active, ErrNotFound, `session "nope": no such session`},
	} {
		if _, err := h.m.AdjustTimeout(ctx, tc.id, tc.to); !errors.Is(err, tc.is) || errString(err) != tc.want {
			t.Errorf("AdjustTimeout(%s, %s): %v, want %q", tc.id, tc.to, err, tc.want)
		}
	}
}

func TestDeleteRemovesEveryLegAndFreesThePorts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	keep := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	gone := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4002")})
	kept := legsOf(t, h.mem)[:4]
	rtcp := flow(gone, legARTCP, "192.0.2.10:4003")
	h.m.Learn(h.mem.NewFlow(rtcp))
	flushed, deleted := len(h.mem.Flushed()), len(h.mem.Deleted())
	if err := h.m.Delete(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if diff := diffLegsOf(t, kept, legsOf(t, h.mem)); diff != "" {
		t.Errorf("legs after delete (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]relay.Flow{rtcp}, h.mem.Deleted()[deleted:], addrs); diff != "" {
		t.Errorf("deleted flows (-want +got):\n%s", diff)
	}
	if got := h.mem.Flushed()[flushed:]; len(got) != 0 {
		t.Errorf("flushed marks %x, want none: the one flow was known", got)
	}
	if _, err := h.m.Get(gone.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after delete: %v", err)
	}
	if err := h.m.Delete(ctx, gone.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if again := h.alloc(t, AllocRequest{}); again.GateA != gone.GateA || again.GateB != gone.GateB {
		t.Errorf("next alloc got %s, %s; want the freed pair %s, %s", again.GateA, again.GateB, gone.GateA, gone.GateB)
	}
	if diff := cmp.Diff(keep, h.get(t, keep.ID), addrs); diff != "" {
		t.Errorf("the other session changed (-want +got):\n%s", diff)
	}
}

func TestListIsOldestFirstAndHandsOutCopies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	first := h.alloc(t, AllocRequest{Labels: map[string]string{"n": "1"}})
	h.clk.advance(time.Second)
	second := h.alloc(t, AllocRequest{})
	l := h.m.List()
	if diff := cmp.Diff([]*Session{first, second}, l, addrs); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	l[0].Labels["n"] = "changed"
	l[0].State = Ringing
	if got := h.get(t, first.ID); got.Labels["n"] != "1" || got.State != Active {
		t.Errorf("changing a listed copy changed the session: %+v", got)
	}
	if sbs := h.m.Switchboards(); len(sbs) != 1 || sbs[0].Name != "edge" {
		t.Errorf("Switchboards() = %v", sbs)
	}
}

func TestShowSumsTheCountersOfEachLeg(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	other := h.alloc(t, AllocRequest{})
	mark := func(s *Session, k uint32) uint32 { return relay.Mark(4*s.Index + k) }
	h.mem.SetFlows(
		relay.Flow{Mark: mark(s, legARTP), Src: ap("192.0.2.10:4000"), Packets: 3, Bytes: 300, Idle: 7 * time.Second},
		relay.Flow{Mark: mark(s, legARTP), Src: ap("198.51.100.7:61000"), Packets: 2, Bytes: 200, Idle: 2 * time.Second},
		relay.Flow{Mark: mark(s, legBRTCP), Src: ap("10.0.0.10:5001"), Packets: 1, Bytes: 80, Idle: 29 * time.Second},
		relay.Flow{Mark: mark(other, legARTP), Src: ap("192.0.2.99:1000"), Packets: 9, Bytes: 900},
	)
	d, err := h.m.Show(context.Background(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []LegStats{
		{Name: "a-rtp", Mark: "0x52000004", Gate: ap("192.0.2.1:30000"), Peer: ap("10.0.0.10:5000"), Source: ap("10.0.0.1:30000"),
			Flows: 2, Packets: 5, Bytes: 500, LastPacket: h.clk.Now().Add(-2 * time.Second),
			From: []netip.AddrPort{ap("192.0.2.10:4000"), ap("198.51.100.7:61000")}},
		{Name: "a-rtcp", Mark: "0x52000005", Gate: ap("192.0.2.1:30001"), Peer: ap("10.0.0.10:5001"), Source: ap("10.0.0.1:30001")},
		{Name: "b-rtp", Mark: "0x52000006", Gate: ap("10.0.0.1:30000"), Peer: ap("192.0.2.10:4000"), Source: ap("192.0.2.1:30000")},
		{Name: "b-rtcp", Mark: "0x52000007", Gate: ap("10.0.0.1:30001"), Peer: ap("192.0.2.10:4001"), Source: ap("192.0.2.1:30001"),
			Flows: 1, Packets: 1, Bytes: 80, LastPacket: h.clk.Now().Add(-29 * time.Second), From: []netip.AddrPort{ap("10.0.0.10:5001")}},
	}
	if diff := cmp.Diff(want, d.Legs, addrs); diff != "" {
		t.Errorf("legs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(s, d.Session, addrs); diff != "" {
		t.Errorf("session (-want +got):\n%s", diff)
	}
	if _, err := h.m.Show(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Show of an unknown id: %v", err)
	}
}

func TestFindJoinsGatesByNameOrAddress(t *testing.T) {
	t.Parallel()
	h := newHarness(t, v6)
	for _, tc := range []struct {
		name, from, to string
		want           []Route
	}{
		{"names from a to b", "external", "internal", []Route{{"edge", AToB}}},
		{"names from b to a", "internal", "external", []Route{{"edge", BToA}}},
		{"names in any case", "EXTERNAL", "Internal", []Route{{"edge", AToB}}},
		{"addresses from b to a", "10.0.0.1", "192.0.2.1", []Route{{"edge", BToA}}},
		{"an IPv4-mapped address", "::ffff:192.0.2.1", "10.0.0.1", []Route{{"edge", AToB}}},
		{"a name and an address", "external", "10.0.0.1", []Route{{"edge", AToB}}},
		{"names of the IPv6 switchboard", "inside6", "outside6", []Route{{"v6", BToA}}},
	} {
		got, err := h.m.Find(tc.from, tc.to)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	for _, tc := range []struct {
		from, to string
		is       error
		want     string
	}{
		{"mars", "internal", ErrUnknownSwitchboard, `no switchboard joins "mars" and "internal": no such switchboard`},
		{"external", "inside6", ErrUnknownSwitchboard, `no switchboard joins "external" and "inside6": no such switchboard`},
		{"external", "external", ErrUnknownSwitchboard, `no switchboard joins "external" and "external": no such switchboard`},
		{"", "internal", ErrInvalid, `invalid request: find needs two gates (names or addresses)`},
	} {
		if _, err := h.m.Find(tc.from, tc.to); !errors.Is(err, tc.is) || errString(err) != tc.want {
			t.Errorf("Find(%q, %q): %v, want %q", tc.from, tc.to, err, tc.want)
		}
	}
}
