package switchboard

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
)

// opposite is the leg that sends towards the peer whose packets enter leg k.
func opposite(k uint32) uint32 { return k ^ 2 }

func TestLearningTakesTheFirstSourceWithinTheWindow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		leg  uint32
	}{
		{"the a-side's RTP source", legARTP},
		{"the a-side's RTCP source", legARTCP},
		{"the b-side's RTP source", legBRTP},
		{"the b-side's RTCP source", legBRTCP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarnessLearning(t, LearnAny, "")
			s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
			h.clk.advance(9 * time.Second) // the window is 10 s
			h.m.Learn(h.mem.NewFlow(flow(s, tc.leg, "198.51.100.7:61000")))
			if got := h.leg(t, s, opposite(tc.leg)); got.Peer != ap("198.51.100.7:61000") {
				t.Errorf("the opposite leg sends to %s, want the learned source", got.Peer)
			}
			if got := h.leg(t, s, tc.leg); got.Lock != ap("198.51.100.7:61000") {
				t.Errorf("the gate's leg is locked to %s, want the learned source", got.Lock)
			}
			legs, learned := legsOf(t, h.mem), h.get(t, s.ID)
			stranger := flow(s, tc.leg, "203.0.113.9:1234")
			h.m.Learn(h.mem.NewFlow(stranger))
			if diff := cmp.Diff([]relay.Flow{stranger}, h.mem.Deleted(), addrs); diff != "" {
				t.Errorf("the second source's flow is deleted (-want +got):\n%s", diff)
			}
			if diff := diffLegsOf(t, legs, legsOf(t, h.mem)); diff != "" {
				t.Errorf("a second source changed the legs (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(learned, h.get(t, s.ID), addrs); diff != "" {
				t.Errorf("a second source changed the session (-before +after):\n%s", diff)
			}
		})
	}
}

func TestLearningFindsAnUnsignalledPeer(t *testing.T) {
	t.Parallel()
	h := newHarnessLearning(t, LearnAny, "")
	s := h.alloc(t, AllocRequest{B: ep("10.0.0.10:5000")})
	if got := h.leg(t, s, legBRTP); got.Peer.IsValid() {
		t.Fatalf("b-rtp sends to %s before a is known", got.Peer)
	}
	h.m.Learn(h.mem.NewFlow(flow(s, legARTP, "198.51.100.7:61000")))
	if got := h.leg(t, s, legBRTP); got.Peer != ap("198.51.100.7:61000") {
		t.Errorf("b-rtp sends to %s, want the learned a", got.Peer)
	}
	if got := h.get(t, s.ID).A.Learned; got != ep("198.51.100.7:61000") {
		t.Errorf("a learned %+v", got)
	}
}

func TestFlowsThatTeachNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	h.m.Learn(h.mem.NewFlow(flow(s, legARTP, "192.0.2.10:4000")))
	for _, tc := range []struct {
		name string
		f    relay.Flow
	}{
		{"a flow into another gate than its leg's (a previous owner of the mark)",
			relay.Flow{Mark: relay.Mark(4*s.Index + legBRTP), Src: ap("203.0.113.9:1234"), Dst: ap("10.0.0.1:30002")}},
		{"a flow into the RTP port on the RTCP leg",
			relay.Flow{Mark: relay.Mark(4*s.Index + legARTCP), Src: ap("203.0.113.9:1234"), Dst: s.GateA}},
		{"a flow of a mark no session has", relay.Flow{Mark: relay.Mark(4 * 77), Src: ap("203.0.113.9:1234"), Dst: s.GateA}},
		{"a flow without a source", relay.Flow{Mark: relay.Mark(4 * s.Index), Dst: s.GateA}},
		{"the source already learned", flow(s, legARTP, "192.0.2.10:4000")},
	} {
		before, legs := h.get(t, s.ID), legsOf(t, h.mem)
		h.m.Learn(h.mem.NewFlow(tc.f))
		if diff := cmp.Diff(before, h.get(t, s.ID), addrs); diff != "" {
			t.Errorf("%s changed the session (-before +after):\n%s", tc.name, diff)
		}
		if diff := diffLegsOf(t, legs, legsOf(t, h.mem)); diff != "" {
			t.Errorf("%s changed the legs (-before +after):\n%s", tc.name, diff)
		}
	}
}

func TestAClosedWindowLocksAnUnlearnedGateToTheSignalledAddress(t *testing.T) {
	t.Parallel()
	h := newHarnessLearning(t, LearnAny, "learning-timeout-b = 20\n")
	ctx := context.Background()
	s := h.alloc(t, AllocRequest{A: Endpoint{RTP: ap("192.0.2.10:4000"), RTCP: ap("192.0.2.10:4009")}, B: ep("10.0.0.10:5000")})
	for k := range uint32(legsPerSession) {
		if l := h.leg(t, s, k); l.Lock.IsValid() {
			t.Fatalf("leg %d locked to %s while learning", k, l.Lock)
		}
	}
	if d := h.m.fireDue(ctx); d != 10*time.Second {
		t.Errorf("the timers sleep %v, want the 10 s until a's window closes", d)
	}
	h.clk.advance(10 * time.Second)
	if d := h.m.fireDue(ctx); d != 10*time.Second {
		t.Errorf("then %v, want the 10 s until b's window closes", d)
	}
	want := map[uint32]string{legARTP: "192.0.2.10:4000", legARTCP: "192.0.2.10:4009"}
	for k, lock := range want {
		if l := h.leg(t, s, k); l.Lock != ap(lock) {
			t.Errorf("leg %d locked to %s, want the signalled %s", k, l.Lock, lock)
		}
	}
	if l := h.leg(t, s, legBRTP); l.Lock.IsValid() {
		t.Errorf("b-rtp locked to %s while b still learns", l.Lock)
	}
	late := flow(s, legARTP, "198.51.100.7:61000")
	h.m.Learn(h.mem.NewFlow(late))
	if got := h.get(t, s.ID).A.Learned; got.RTP.IsValid() {
		t.Errorf("a learned %s after its window closed", got.RTP)
	}
	if diff := cmp.Diff([]relay.Flow{late}, h.mem.Deleted(), addrs); diff != "" {
		t.Errorf("a flow that raced the lock is deleted (-want +got):\n%s", diff)
	}
	h.m.Learn(h.mem.NewFlow(flow(s, legBRTP, "10.0.0.99:7000")))
	h.clk.advance(10 * time.Second)
	h.m.fireDue(ctx)
	if l := h.leg(t, s, legBRTP); l.Lock != ap("10.0.0.99:7000") {
		t.Errorf("b-rtp locked to %s, want what b learned", l.Lock)
	}
	if l := h.leg(t, s, legBRTCP); l.Lock != ap("10.0.0.10:5001") {
		t.Errorf("b-rtcp locked to %s, want the signalled RTCP port", l.Lock)
	}
	if d := h.m.fireDue(ctx); d != time.Minute {
		t.Errorf("with nothing due the timers sleep %v, want a minute", d)
	}
}

func TestAlwaysLearnFollowsEverySourceAndNeverLocks(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "always-learn-a = true\n")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	for _, src := range []string{"198.51.100.7:61000", "198.51.100.8:62000", "198.51.100.7:61000"} {
		h.clk.advance(time.Minute)
		h.m.fireDue(context.Background())
		h.m.Learn(h.mem.NewFlow(flow(s, legARTP, src)))
		if got := h.leg(t, s, legBRTP); got.Peer != ap(src) {
			t.Errorf("b-rtp sends to %s, want %s", got.Peer, src)
		}
		if got := h.leg(t, s, legARTP); got.Lock.IsValid() {
			t.Errorf("the always-learn gate is locked to %s", got.Lock)
		}
	}
	// The other side still learns once and locks.
	h.m.Learn(h.mem.NewFlow(flow(s, legBRTP, "10.0.0.99:7000")))
	if got := h.leg(t, s, legBRTP); got.Lock != ap("10.0.0.10:5000") {
		t.Errorf("b-rtp locked to %s, want b's signalled address (its window closed unlearned)", got.Lock)
	}
}

func TestALearnTheKernelRefusesChangesNothing(t *testing.T) {
	t.Parallel()
	h := newHarnessLearning(t, LearnAny, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	h.mem.FailNext(errors.New("injected"))
	h.m.Learn(h.mem.NewFlow(flow(s, legARTP, "198.51.100.7:61000")))
	if diff := cmp.Diff(s, h.get(t, s.ID), addrs); diff != "" {
		t.Errorf("session (-before +after):\n%s", diff)
	}
	// The window is still open: the next packet teaches.
	h.m.Learn(h.mem.NewFlow(flow(s, legARTP, "198.51.100.7:61000")))
	if got := h.leg(t, s, legBRTP); got.Peer != ap("198.51.100.7:61000") {
		t.Errorf("b-rtp sends to %s after the retry", got.Peer)
	}
}

func TestRingingSessionsExpireUnlessAnswered(t *testing.T) {
	t.Parallel()
	h := newHarnessLearning(t, LearnAny, "ringing-timeout = \"30s\"\n")
	ctx := context.Background()
	ringing := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), Ringing: true})
	answered := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4002"), Ringing: true})
	// While ringing the gates learn until the ringing deadline, past the
	// 10 s learning timeout, and lock nothing.
	h.clk.advance(25 * time.Second)
	h.m.fireDue(ctx)
	seen := flow(ringing, legARTP, "198.51.100.7:61000")
	h.m.Learn(h.mem.NewFlow(seen))
	if got := h.get(t, ringing.ID).A.Learned.RTP; got != ap("198.51.100.7:61000") {
		t.Errorf("a ringing session learned %s at 25 s, want the source", got)
	}
	if l := h.leg(t, answered, legARTP); l.Lock.IsValid() {
		t.Errorf("a ringing session's gate locked to %s", l.Lock)
	}
	if _, err := h.m.AdjustTimeout(ctx, answered.ID, Active); err != nil {
		t.Fatal(err)
	}
	deleted := len(h.mem.Deleted())
	h.clk.advance(5 * time.Second)
	h.m.fireDue(ctx)
	if _, err := h.m.Get(ringing.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the unanswered session after its ringing timeout: %v, want it gone", err)
	}
	if diff := cmp.Diff([]relay.Flow{seen}, h.mem.Deleted()[deleted:], addrs); diff != "" {
		t.Errorf("flows deleted with the expired session (-want +got):\n%s", diff)
	}
	if _, err := h.m.Get(answered.ID); err != nil {
		t.Errorf("the answered session: %v", err)
	}
	for _, l := range legsOf(t, h.mem) {
		if idx, _, _ := legSide(l.Mark); idx != answered.Index {
			t.Errorf("leg %#x of the expired session is still installed", l.Mark)
		}
	}
	h.clk.advance(time.Hour)
	h.m.fireDue(ctx)
	if got := h.get(t, answered.ID); got.State != Active {
		t.Errorf("the answered session is %s", got.State)
	}
	if free := h.m.boards["edge"].a.free; free != 1 {
		t.Errorf("%d free pairs on gate-a, want the expired session's", free)
	}
}

func TestRunLearnsFromEventsAndExistingFlowsAndStopsOnCancel(t *testing.T) {
	t.Parallel()
	h := newHarnessLearning(t, LearnAny, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	h.mem.SetFlows(flow(s, legBRTP, "10.0.0.99:7000")) // before Run subscribed
	h.mem.KernelLearns(relay.Mark(4*s.Index+legBRTP), ap("10.0.0.99:7000"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.m.Run(ctx) }()
	// The caller's own address: learning it leaves the b-side's leg (and
	// what the kernel learned for it) as it is.
	h.mem.Inject(flow(s, legARTP, "192.0.2.10:4000"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := h.get(t, s.ID)
		if got.A.Learned.RTP.IsValid() && got.B.Learned.RTP.IsValid() {
			if got.A.Learned.RTP != ap("192.0.2.10:4000") || got.B.Learned.RTP != ap("10.0.0.99:7000") {
				t.Errorf("learned a %s and b %s", got.A.Learned.RTP, got.B.Learned.RTP)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("learned a %s and b %s after 10 s", got.A.Learned.RTP, got.B.Learned.RTP)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v on cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestMediaTimeoutEndsOnlySilentAnsweredSessions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "media-timeout = \"30s\"\n")
	ctx := context.Background()
	silent := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	held := h.alloc(t, AllocRequest{A: Endpoint{RTP: ap("192.0.2.10:4002"), Hold: true}, B: ep("10.0.0.10:5002")})
	h.mem.SetFlows()
	h.clk.advance(29 * time.Second)
	h.m.checkMedia(ctx)
	if len(h.m.List()) != 2 {
		t.Fatalf("%d sessions before the media timeout, want 2", len(h.m.List()))
	}
	h.clk.advance(time.Second)
	h.m.checkMedia(ctx)
	if _, err := h.m.Get(silent.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("silent session: %v, want expired", err)
	}
	if _, err := h.m.Get(held.ID); err != nil {
		t.Errorf("held session: %v", err)
	}
	// Media keeps a session alive; the timeout counts from the last flow.
	flowing := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	h.mem.SetFlows(flow(flowing, legBRTP, "10.0.0.10:5000"))
	h.clk.advance(time.Hour)
	h.m.checkMedia(ctx)
	h.mem.SetFlows()
	h.clk.advance(29 * time.Second)
	h.m.checkMedia(ctx)
	if _, err := h.m.Get(flowing.ID); err != nil {
		t.Errorf("a session 29 s after its last flow: %v", err)
	}
	if got := h.m.mediaCheckInterval(); got != 10*time.Second {
		t.Errorf("media checks every %v, want 10 s (a third of 30 s)", got)
	}
}

// A "signalled" gate (the default) learns only its side's own parties:
// a source whose IP is the signalled address or the signalling source,
// from any port (a NAT may change it). While it learns, the kernel takes
// new flows only from those IPs; a stranger's flow that raced the guard is
// deleted and teaches nothing, even while the call rings.
func TestSignalledGateLearnsOnlyItsSidesParties(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	a := Endpoint{RTP: ap("192.168.1.10:4000"), Source: mustAddr("198.51.100.7")} // behind NAT
	s := h.alloc(t, AllocRequest{A: a, B: ep("10.0.0.10:5000"), Ringing: true})
	l := h.leg(t, s, legARTP)
	if !l.Guard || !l.Learn || l.Allowed != relay.Allow(mustAddr("192.168.1.10"), mustAddr("198.51.100.7")) {
		t.Fatalf("a-rtp while ringing: %+v, want guarded and learning from the SDP and signalling IPs", l)
	}
	stranger := flow(s, legARTP, "203.0.113.9:1234")
	h.m.Learn(h.mem.NewFlow(stranger))
	if got := h.mem.Deleted(); len(got) != 1 || got[0] != stranger {
		t.Errorf("deleted %v, want the stranger's flow", got)
	}
	if x, _ := h.m.Get(s.ID); x.A.Learned.RTP.IsValid() {
		t.Errorf("learned %s from a stranger", x.A.Learned.RTP)
	}
	h.m.Learn(h.mem.NewFlow(flow(s, legARTP, "198.51.100.7:61000")))
	l = h.leg(t, s, legARTP)
	if l.Lock != ap("198.51.100.7:61000") || l.Learned != l.Lock || l.Guard || l.Learn {
		t.Errorf("a-rtp after learning the NAT's source: %+v, want locked to it and its learned source kept", l)
	}
	if p := h.leg(t, s, legBRTP).Peer; p != ap("198.51.100.7:61000") {
		t.Errorf("b-rtp sends to %s, want the learned source", p)
	}
}

// Learning modes: "any" learns from anyone unless the side asked for
// strict sources; "off" locks the gate to the signalled address at once
// and learns nothing, or takes nothing without one.
func TestLearningModesAndStrictSources(t *testing.T) {
	t.Parallel()
	h := newHarnessLearning(t, LearnAny, "")
	any := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	if l := h.leg(t, any, legARTP); l.Guard || !l.Learn {
		t.Errorf("an \"any\" gate: %+v, want learning unguarded", l)
	}
	strict := h.alloc(t, AllocRequest{A: Endpoint{RTP: ap("192.0.2.10:4002"), Strict: true}})
	if l := h.leg(t, strict, legARTP); !l.Guard || !l.Learn || l.Allowed != relay.Allow(mustAddr("192.0.2.10")) {
		t.Errorf("a strict side on an \"any\" gate: %+v, want guarded to its signalled IP", l)
	}

	off := newHarnessLearning(t, LearnOff, "")
	s := off.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), Ringing: true})
	if l := off.leg(t, s, legARTP); l.Lock != ap("192.0.2.10:4000") || l.Learn {
		t.Errorf("an \"off\" gate: %+v, want locked to the signalled address while ringing", l)
	}
	if l := off.leg(t, s, legBRTP); !l.Guard || l.Allowed != relay.Allow() || l.Learn {
		t.Errorf("an \"off\" gate without a signalled address: %+v, want guarded with no source", l)
	}
	off.m.Learn(off.mem.NewFlow(flow(s, legARTP, "192.0.2.10:4444")))
	if x, _ := off.m.Get(s.ID); x.A.Learned.RTP.IsValid() {
		t.Errorf("an \"off\" gate learned %s", x.A.Learned.RTP)
	}
}

// A scan dumps the flows without the Manager's lock. A session changed
// between the dump and its turn is not taught by the dump: the flow may be
// one the change made stale.
func TestAScanDoesNotTeachASessionChangedSinceItsDump(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	old := flow(s, legBRTP, "10.0.0.10:5000")
	h.mem.KernelLearns(old.Mark, old.Src)
	h.m.mu.Lock()
	seq := h.m.changes
	h.m.mu.Unlock()
	kernel, err := h.mem.Learned(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Update(ctx, s.ID, UpdateRequest{B: epp("10.0.0.10:5010")}); err != nil {
		t.Fatal(err)
	}
	h.m.learnFrom(old, &dumped{kernel: kernel, seq: seq})
	if got := h.get(t, s.ID).B.Learned.RTP; got.IsValid() {
		t.Errorf("a flow dumped before the re-INVITE taught %s", got)
	}
	if got := h.leg(t, s, legARTP).Peer; got != ap("10.0.0.10:5010") {
		t.Errorf("the caller's media goes to %s, want the moved callee 10.0.0.10:5010", got)
	}
}

// What the kernel learned for both sides while the daemon was down is
// taught by one scan: the scan's own first lesson does not count as a
// change since its dump.
func TestAScanTeachesBothSidesTheKernelLearned(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	b, a := flow(s, legBRTP, "10.0.0.10:5000"), flow(s, legARTP, "192.0.2.10:61000")
	h.mem.KernelLearns(b.Mark, b.Src)
	h.mem.KernelLearns(a.Mark, a.Src)
	h.mem.SetFlows(b, a)
	h.m.scanFlows(context.Background())
	got := h.get(t, s.ID)
	if got.A.Learned.RTP != a.Src || got.B.Learned.RTP != b.Src {
		t.Errorf("learned a %s and b %s, want %s and %s", got.A.Learned.RTP, got.B.Learned.RTP, a.Src, b.Src)
	}
}

// Learning windows that close together (a burst of calls set up at once)
// are locked a batch at a time, each batch in one kernel transaction, and
// the Manager's lock is let go between batches.
func TestWindowsClosingTogetherAreLockedInBatches(t *testing.T) {
	t.Parallel()
	h, ids := newBatchHarness(t, "")
	ctx := context.Background()
	n := len(ids)
	h.clk.advance(time.Hour)
	before := h.mem.Applied()
	rounds := 0
	for ; rounds < 100; rounds++ {
		if h.m.fireDue(ctx) > time.Millisecond {
			break
		}
	}
	if rounds < 3 {
		t.Errorf("%d sessions locked in %d holds of the lock, want batches of at most %d", n, rounds+1, timerBatch)
	}
	if got, most := h.mem.Applied()-before, (n+timerBatch-1)/timerBatch; got > most {
		t.Errorf("%d kernel transactions locked %d sessions, want at most %d (one per batch)", got, n, most)
	}
	for _, id := range ids {
		h.m.mu.Lock()
		locks := lockBits(h.m.installed(h.m.sessions[id]))
		h.m.mu.Unlock()
		if locks == 0 {
			t.Fatalf("session %s holds no lock after its windows closed", id)
		}
	}
}

// Sessions silenced together (a network outage) end a batch at a time,
// each batch in one kernel transaction.
func TestSilentSessionsEndInBatches(t *testing.T) {
	t.Parallel()
	h, ids := newBatchHarness(t, "[defaults]\nmedia-timeout = \"30s\"\n")
	ctx := context.Background()
	n := len(ids)
	h.m.fireDue(ctx) // nothing due yet
	h.mem.SetFlows()
	h.clk.advance(31 * time.Second)
	for h.m.fireDue(ctx) <= time.Millisecond { // the learning windows' locks first
	}
	before := h.mem.Applied()
	h.m.checkMedia(ctx)
	if left := len(h.m.List()); left != 0 {
		t.Fatalf("%d of %d silent sessions left after the media check", left, n)
	}
	if got, most := h.mem.Applied()-before, (n+timerBatch-1)/timerBatch; got > most {
		t.Errorf("%d kernel transactions ended %d sessions, want at most %d (one per batch)", got, n, most)
	}
}

// newBatchHarness is a harness whose switchboard "edge" (with the keys of
// extra before it) holds 3*timerBatch+5 answered sessions, allocated at
// once; it returns their ids.
func newBatchHarness(t *testing.T, extra string) (*harness, []string) {
	t.Helper()
	h := &harness{mem: relaytest.NewMemory(), clk: &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, dir: t.TempDir()}
	h.startWith(t, fmt.Sprintf(`state-dir = %q
%s[[switchboard]]
name = "edge"
gate-a = { address = "192.0.2.1", ports = "30000-30399" }
gate-b = { address = "10.0.0.1", ports = "30000-30399" }
`, h.dir, extra))
	var ids []string
	for i := range 3*timerBatch + 5 {
		s := h.alloc(t, AllocRequest{A: ep(fmt.Sprintf("192.0.2.10:%d", 4000+2*i)), B: ep(fmt.Sprintf("10.0.0.10:%d", 4000+2*i))})
		ids = append(ids, s.ID)
	}
	return h, ids
}

// lookupHook is the in-memory dataplane whose look-up of learned sources
// runs during first (once) while it reads.
type lookupHook struct {
	*relaytest.Memory
	during func()
}

func (l *lookupHook) Learned(ctx context.Context, marks ...uint32) (map[uint32]netip.AddrPort, error) {
	got, err := l.Memory.Learned(ctx, marks...)
	if l.during != nil {
		l.during()
		l.during = nil
	}
	return got, err
}

// A change that lands while an event's learned source is looked up makes
// what the look-up read stale: the event is looked at again, and teaches
// what the kernel holds after the change: nothing once its side was
// re-pointed, the same source after a change that kept it.
func TestAChangeDuringTheLookUpOfAnEventMakesItLookAgain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change UpdateRequest
		want   string // learned; "" none
	}{
		{"the side re-pointed", UpdateRequest{B: epp("10.0.0.10:5010")}, ""},
		{"the side kept", UpdateRequest{Labels: map[string]string{"note": "relabelled"}}, "10.0.0.10:5000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, "")
			ctx := context.Background()
			s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
			f := h.mem.NewFlow(flow(s, legBRTP, "10.0.0.10:5000"))
			h.m.dp = &lookupHook{Memory: h.mem, during: func() {
				if _, err := h.m.Update(ctx, s.ID, tc.change); err != nil {
					t.Error(err)
				}
			}}
			h.m.Learn(f) // its first look-up reads the kernel before the change
			got := h.get(t, s.ID).B.Learned.RTP
			if tc.want == "" && got.IsValid() || tc.want != "" && got != ap(tc.want) {
				t.Errorf("learned %s, want %q", got, tc.want)
			}
		})
	}
}

// A re-INVITE moves the callee from port 5000 to 5010 of the same host.
// Its gate learns again, but the old port's flow is kept (only the leg's
// admission changed) and the kernel, which learns from new flows only and
// forgot what the gate learned, does not learn from it. Neither a scan of
// the flows that exist (a restart's or a resubscribed watch's) nor a late
// event of the old flow (its first packet was learned by the kernel just
// before the update, the daemon had not handled it yet) may teach the old
// port: the caller's media would go back to it, and the moved callee
// would get none. What the kernel learns next teaches, either way.
func TestAFlowFromBeforeAReinviteTeachesNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// before runs before the update, after it with the old flow;
		// learn hands the daemon a flow the kernel learned from.
		before, after func(h *harness, old relay.Flow)
		learn         func(h *harness, old, moved relay.Flow)
	}{
		{"a scan",
			func(h *harness, old relay.Flow) { h.m.Learn(h.mem.NewFlow(old)) },
			func(h *harness, old relay.Flow) { h.mem.SetFlows(old); h.m.scanFlows(context.Background()) },
			func(h *harness, old, moved relay.Flow) {
				h.mem.KernelLearns(moved.Mark, moved.Src)
				h.mem.SetFlows(old, moved)
				h.m.scanFlows(context.Background())
			}},
		{"a late event",
			func(h *harness, old relay.Flow) { h.mem.NewFlow(old) },
			func(h *harness, old relay.Flow) { h.m.Learn(old) },
			func(h *harness, _, moved relay.Flow) { h.m.Learn(h.mem.NewFlow(moved)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, "")
			s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
			old := flow(s, legBRTP, "10.0.0.10:5000")
			tc.before(h, old)
			if _, err := h.m.Update(context.Background(), s.ID, UpdateRequest{B: epp("10.0.0.10:5010")}); err != nil {
				t.Fatal(err)
			}
			tc.after(h, old)
			if got := h.get(t, s.ID).B.Learned.RTP; got.IsValid() {
				t.Errorf("the moved callee is learned as %s, want nothing learned yet", got)
			}
			if got := h.leg(t, s, legARTP).Peer; got != ap("10.0.0.10:5010") {
				t.Errorf("the caller's media goes to %s, want the moved callee 10.0.0.10:5010", got)
			}
			moved := flow(s, legBRTP, "10.0.0.10:5010")
			tc.learn(h, old, moved)
			if got := h.get(t, s.ID).B.Learned.RTP; got != moved.Src {
				t.Errorf("after the kernel learned %s the callee is learned as %s", moved.Src, got)
			}
		})
	}
}
