package switchboard

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
)

// groupConfig is the edge switchboard with room for 500 sessions.
const groupConfig = `state-dir = %q
[[switchboard]]
name = "edge"
gate-a = { name = "external", address = "192.0.2.1", ports = "20000-20999" }
gate-b = { name = "internal", address = "10.0.0.1", ports = "20000-20999" }
`

func newGroupHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, "")
	h.m.Close()
	h.startWith(t, fmt.Sprintf(groupConfig, h.dir))
	return h
}

// inGroup runs n requests at once, all waiting for the Manager's lock
// when it is let go, and holds the leader of their group in its gathering
// pause until every one has queued its change; it returns their errors.
func inGroup(t *testing.T, m *Manager, n int, run func(i int) error) []error {
	t.Helper()
	errs := make([]error, n)
	until := func(what string, done func() bool) {
		for deadline := time.Now().Add(5 * time.Second); !done(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("timed out waiting until %s", what)
				return
			}
		}
	}
	m.mu.Lock()
	m.q.gathered = func() {
		m.q.gathered = nil
		until("all changes are queued", func() bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			return len(m.q.waiting) == n
		})
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = run(i) }()
	}
	until("all requests wait for the lock", func() bool { return m.q.arriving.Load() == int32(n) })
	m.mu.Unlock()
	wg.Wait()
	return errs
}

func TestConcurrentRequestsShareOneTransaction(t *testing.T) {
	h := newGroupHarness(t)
	ctx := context.Background()
	old := h.alloc(t, AllocRequest{A: ep("198.51.100.1:4000")})
	before := h.mem.Applied()
	errs := inGroup(t, h.m, 4, func(i int) error {
		if i == 0 {
			return h.m.Delete(ctx, old.ID)
		}
		_, err := h.m.Alloc(ctx, AllocRequest{Switchboard: "edge", A: ep(fmt.Sprintf("198.51.100.%d:4000", i))})
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("member %d: %v", i, err)
		}
	}
	if n := h.mem.Applied() - before; n != 1 {
		t.Errorf("a group of 4 changes took %d transactions, want 1", n)
	}
	if _, err := h.m.Get(old.ID); err == nil {
		t.Error("the deleted session is still there")
	}
	sessions := h.m.List()
	if len(sessions) != 3 {
		t.Fatalf("%d sessions, want 3", len(sessions))
	}
	checkKernelAndJournal(t, h, sessions)
}

// checkKernelAndJournal checks that the dataplane holds exactly the legs
// of sessions and that a restart from the journal brings them all back.
func checkKernelAndJournal(t *testing.T, h *harness, sessions []*Session) {
	t.Helper()
	var want []relay.Leg
	for _, s := range sessions {
		for k := range uint32(legsPerSession) {
			want = append(want, h.leg(t, s, k))
		}
	}
	if got := legsOf(t, h.mem); len(got) != len(want) {
		t.Errorf("the dataplane holds %d legs, want %d", len(got), len(want))
	}
	h.m.Close()
	h.startWith(t, fmt.Sprintf(groupConfig, h.dir))
	for _, s := range sessions {
		if _, err := h.m.Get(s.ID); err != nil {
			t.Errorf("after a restart from the journal: %v", err)
		}
	}
	if n := len(h.m.List()); n != len(sessions) {
		t.Errorf("after a restart: %d sessions, want %d", n, len(sessions))
	}
}

func TestGroupMemberTheKernelRefusesFailsAlone(t *testing.T) {
	h := newGroupHarness(t)
	ctx := context.Background()
	// Behind the Manager's back a leg holds the first mark of the session
	// index the second request of the group will take.
	foreign := relay.Leg{Mark: relay.Mark(4 * 2), Gate: ap("192.0.2.99:1"), Source: ap("10.0.0.99:1")}
	if _, err := h.mem.Apply(ctx, relay.Batch{Add: []relay.Leg{foreign}}); err != nil {
		t.Fatal(err)
	}
	before := h.mem.Applied()
	errs := inGroup(t, h.m, 4, func(i int) error {
		_, err := h.m.Alloc(ctx, AllocRequest{Switchboard: "edge", A: ep(fmt.Sprintf("198.51.100.%d:4000", i+10))})
		return err
	})
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			t.Logf("refused member: %v", err)
		}
	}
	if failed != 1 {
		t.Fatalf("%d members failed, want the one the kernel refuses", failed)
	}
	// The refused group changed nothing; then each member alone.
	if n := h.mem.Applied() - before; n != 3 {
		t.Errorf("%d transactions committed, want 3: one per member the kernel takes", n)
	}
	sessions := h.m.List()
	if len(sessions) != 3 {
		t.Fatalf("%d sessions, want 3", len(sessions))
	}
	for _, s := range sessions {
		if s.Index == 2 {
			t.Errorf("session %s holds the refused index", s.ID)
		}
	}
	// The refused member's ports are free again: 1000 ports make 500 pairs.
	if free := h.m.boards["edge"].a.free; free != 500-3 {
		t.Errorf("%d free port pairs on gate-a, want %d", free, 500-3)
	}
	if _, err := h.mem.Apply(ctx, relay.Batch{Remove: []relay.Leg{foreign}}); err != nil {
		t.Fatal(err)
	}
	checkKernelAndJournal(t, h, sessions)
}

func TestManyConcurrentRequestsKeepKernelJournalAndSessionsInStep(t *testing.T) {
	h := newGroupHarness(t)
	ctx := context.Background()
	const clients, calls = 16, 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	var kept []*Session
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				s, err := h.m.Alloc(ctx, AllocRequest{Switchboard: "edge", Ringing: true, A: ep(fmt.Sprintf("198.51.100.%d:%d", c+1, 2*i+4000))})
				if err != nil {
					t.Error(err)
					return
				}
				b := ep(fmt.Sprintf("203.0.113.%d:%d", c+1, 2*i+5000))
				if _, err := h.m.Update(ctx, s.ID, UpdateRequest{B: &b, Answer: true}); err != nil {
					t.Error(err)
					return
				}
				if i%4 == 0 {
					mu.Lock()
					kept = append(kept, s)
					mu.Unlock()
					continue
				}
				if err := h.m.Delete(ctx, s.ID); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d requests in %d transactions", clients*calls*3-len(kept), h.mem.Applied())
	sessions := h.m.List()
	if len(sessions) != len(kept) {
		t.Fatalf("%d sessions, want %d", len(sessions), len(kept))
	}
	for _, s := range sessions {
		if s.State != Active || !s.B.Signalled.RTP.IsValid() {
			t.Errorf("session %s: state %s, b %s: the update is lost", s.ID, s.State, s.B.Signalled.RTP)
		}
	}
	checkKernelAndJournal(t, h, sessions)
}

func TestDiffFewMatchesDiffMany(t *testing.T) {
	t.Parallel()
	leg := func(mark uint32, peer string) relay.Leg {
		l := relay.Leg{Mark: relay.Mark(mark), Gate: ap("192.0.2.1:30000"), Source: ap("10.0.0.1:30000")}
		if peer != "" {
			l.Peer = ap(peer)
		}
		return l
	}
	cases := [][2][]relay.Leg{
		{nil, {leg(4, ""), leg(5, "")}},
		{{leg(4, ""), leg(5, "")}, nil},
		{{leg(4, ""), leg(5, "203.0.113.1:5")}, {leg(4, ""), leg(5, "203.0.113.1:6")}},
		{{leg(4, ""), leg(6, "")}, {leg(5, ""), leg(6, "203.0.113.1:7"), leg(4, "")}},
	}
	for i, c := range cases {
		if diff := cmp.Diff(diffMany(c[0], c[1]), diffFew(c[0], c[1]), addrs); diff != "" {
			t.Errorf("case %d (-many +few):\n%s", i, diff)
		}
	}
}
