package switchboard

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
func ap(s string) netip.AddrPort   { return netip.MustParseAddrPort(s) }
func ep(rtp string) Endpoint       { return Endpoint{RTP: ap(rtp)} }
func epp(rtp string) *Endpoint     { e := ep(rtp); return &e }
func legsOf(t *testing.T, m *relaytest.Memory) []relay.Leg {
	l, _ := m.Legs(context.Background())
	return l
}

// clock is a settable fake time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type harness struct {
	m   *Manager
	mem *relaytest.Memory
	clk *clock
	dir string
	cfg *Config
}

func newHarness(t *testing.T, extra string) *harness {
	t.Helper()
	h := &harness{mem: relaytest.NewMemory(), clk: &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, dir: t.TempDir()}
	h.start(t, extra)
	return h
}

func (h *harness) start(t *testing.T, extra string) {
	t.Helper()
	cfg, err := ParseConfig([]byte(fmt.Sprintf(`state-dir = %q
[[switchboard]]
name = "edge"
gate-a = { name = "external", address = "192.0.2.1", ports = "30000-30003" }
gate-b = { name = "internal", address = "10.0.0.1", ports = "30000-30003" }
%s`, h.dir, extra)))
	if err != nil {
		t.Fatal(err)
	}
	h.cfg = cfg
	h.m = NewManager(cfg, h.mem, Options{Now: h.clk.Now})
	if err := h.m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.m.Close() })
}

func (h *harness) alloc(t *testing.T, r AllocRequest) *Session {
	t.Helper()
	if r.Switchboard == "" {
		r.Switchboard = "edge"
	}
	s, err := h.m.Alloc(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAllocInstallsFourLegs(t *testing.T) {
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: Endpoint{RTP: ap("10.0.0.10:5000"), RTCP: ap("10.0.0.10:5009")}})
	m := func(k uint32) uint32 { return relay.Mark(4*s.Index + k) }
	want := []relay.Leg{
		{Mark: m(0), Gate: ap("192.0.2.1:30000"), Peer: ap("10.0.0.10:5000"), Source: ap("10.0.0.1:30000")},
		{Mark: m(1), Gate: ap("192.0.2.1:30001"), Peer: ap("10.0.0.10:5009"), Source: ap("10.0.0.1:30001")},
		{Mark: m(2), Gate: ap("10.0.0.1:30000"), Peer: ap("192.0.2.10:4000"), Source: ap("192.0.2.1:30000")},
		{Mark: m(3), Gate: ap("10.0.0.1:30001"), Peer: ap("192.0.2.10:4001"), Source: ap("192.0.2.1:30001")},
	}
	if diff := cmp.Diff(want, legsOf(t, h.mem), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("legs (-want +got):\n%s", diff)
	}
}

func TestAllocErrors(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	if _, err := h.m.Alloc(ctx, AllocRequest{Switchboard: "nope"}); !errors.Is(err, ErrUnknownSwitchboard) {
		t.Errorf("unknown switchboard: %v", err)
	}
	if _, err := h.m.Alloc(ctx, AllocRequest{Switchboard: "edge", A: ep("[2001:db8::1]:4000")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("family mismatch: %v", err)
	}
	h.alloc(t, AllocRequest{})
	h.alloc(t, AllocRequest{})
	before := legsOf(t, h.mem)
	_, err := h.m.Alloc(ctx, AllocRequest{Switchboard: "edge"})
	if !errors.Is(err, ErrPortsExhausted) || !strings.Contains(err.Error(), `switchboard "edge": gate-a 192.0.2.1 ports 30000-30003`) {
		t.Errorf("exhausted: %v", err)
	}
	if diff := cmp.Diff(before, legsOf(t, h.mem), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("a failed alloc changed the kernel (-before +after):\n%s", diff)
	}
}

func TestKernelFailureLeavesEverythingAsItWas(t *testing.T) {
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	h.mem.FailNext(errors.New("injected"))
	if _, err := h.m.Alloc(context.Background(), AllocRequest{Switchboard: "edge"}); err == nil {
		t.Fatal("alloc succeeded despite the kernel failing")
	}
	h.mem.FailNext(errors.New("injected"))
	if _, err := h.m.Update(context.Background(), s.ID, UpdateRequest{B: epp("10.0.0.11:6000")}); err == nil {
		t.Fatal("update succeeded despite the kernel failing")
	}
	got, _ := h.m.Get(s.ID)
	if got.B.Signalled.RTP != ap("10.0.0.10:5000") || len(h.m.List()) != 1 || len(legsOf(t, h.mem)) != 4 {
		t.Errorf("after failures: b=%s, %d sessions, %d legs", got.B.Signalled.RTP, len(h.m.List()), len(legsOf(t, h.mem)))
	}
	// The failed alloc's ports were released: one more pair is still free.
	if n := h.alloc(t, AllocRequest{}); n.GateA.Port() != 30002 {
		t.Errorf("next alloc got %s, want the released pair 30002", n.GateA)
	}
}

func TestUpdateRepointsAndFlushesOnlyChangedLegs(t *testing.T) {
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	flushed := len(h.mem.Flushed())
	if _, err := h.m.Update(context.Background(), s.ID, UpdateRequest{B: epp("10.0.0.11:6000")}); err != nil {
		t.Fatal(err)
	}
	got := h.mem.Flushed()[flushed:]
	want := []uint32{relay.Mark(4 * s.Index), relay.Mark(4*s.Index + 1)} // a-rtp and a-rtcp go to b
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flushed marks (-want +got):\n%s", diff)
	}
	if _, err := h.m.Update(context.Background(), "nope", UpdateRequest{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("update of an unknown id: %v", err)
	}
	if err := h.m.Delete(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	if n := len(legsOf(t, h.mem)); n != 0 {
		t.Errorf("%d legs after delete", n)
	}
}

func legOf(t *testing.T, h *harness, s *Session, k uint32) relay.Leg {
	t.Helper()
	for _, l := range legsOf(t, h.mem) {
		if l.Mark == relay.Mark(4*s.Index+k) {
			return l
		}
	}
	t.Fatalf("leg %d of %s missing", k, s.ID)
	return relay.Leg{}
}

func TestLearningTakesTheFirstSourceAndLocks(t *testing.T) {
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	natted, stranger := ap("198.51.100.7:61000"), ap("203.0.113.9:1234")
	h.m.Learn(relay.Flow{Mark: relay.Mark(4 * s.Index), Src: natted, Dst: s.GateA})
	h.m.Learn(relay.Flow{Mark: relay.Mark(4 * s.Index), Src: stranger, Dst: s.GateA})
	if got := legOf(t, h, s, legBRTP); got.Peer != natted {
		t.Errorf("b-rtp leg sends to %s, want the learned %s", got.Peer, natted)
	}
	if got := legOf(t, h, s, legARTP); got.Lock != natted {
		t.Errorf("a-rtp leg locked to %s, want %s", got.Lock, natted)
	}
	// A flow of another gate (a stale mark) teaches nothing.
	h.m.Learn(relay.Flow{Mark: relay.Mark(4*s.Index + legBRTP), Src: stranger, Dst: ap("10.0.0.1:39998")})
	if got, _ := h.m.Get(s.ID); got.B.Learned.RTP.IsValid() {
		t.Errorf("learned %s from a flow of another gate", got.B.Learned.RTP)
	}
}

func TestClosedWindowLocksToTheSignalledAddress(t *testing.T) {
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	if l := legOf(t, h, s, legARTP); l.Lock.IsValid() {
		t.Fatalf("locked to %s while learning", l.Lock)
	}
	h.clk.advance(11 * time.Second)
	h.m.fireDue(context.Background())
	if l := legOf(t, h, s, legARTP); l.Lock != ap("192.0.2.10:4000") {
		t.Errorf("after the window: locked to %s, want the signalled address", l.Lock)
	}
	h.m.Learn(relay.Flow{Mark: relay.Mark(4 * s.Index), Src: ap("198.51.100.7:61000"), Dst: s.GateA})
	if got, _ := h.m.Get(s.ID); got.A.Learned.RTP.IsValid() {
		t.Errorf("learned %s after the window closed", got.A.Learned.RTP)
	}
}

func TestAlwaysLearnFollowsEverySourceAndNeverLocks(t *testing.T) {
	h := newHarness(t, "always-learn-a = true\n")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	for _, src := range []string{"198.51.100.7:61000", "198.51.100.8:62000"} {
		h.clk.advance(time.Minute)
		h.m.Learn(relay.Flow{Mark: relay.Mark(4 * s.Index), Src: ap(src), Dst: s.GateA})
		if got := legOf(t, h, s, legBRTP); got.Peer != ap(src) {
			t.Errorf("b-rtp sends to %s, want %s", got.Peer, src)
		}
		if got := legOf(t, h, s, legARTP); got.Lock.IsValid() {
			t.Errorf("always-learn gate locked to %s", got.Lock)
		}
	}
}

func TestRingingSessionsExpireUnlessAnswered(t *testing.T) {
	h := newHarness(t, `ringing-timeout = "5s"`+"\n")
	ringing := h.alloc(t, AllocRequest{Ringing: true})
	answered := h.alloc(t, AllocRequest{Ringing: true})
	s, err := h.m.AdjustTimeout(context.Background(), answered.ID, Active)
	if err != nil || !s.Expires.IsZero() {
		t.Fatalf("adjust-timeout: %v, expires %v", err, s.Expires)
	}
	h.clk.advance(6 * time.Second)
	h.m.fireDue(context.Background())
	if _, err := h.m.Get(ringing.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("unanswered session after its ringing timeout: %v", err)
	}
	if _, err := h.m.Get(answered.ID); err != nil {
		t.Errorf("answered session: %v", err)
	}
	if n := len(legsOf(t, h.mem)); n != 4 {
		t.Errorf("%d legs, want the answered session's 4", n)
	}
	if _, err := h.m.AdjustTimeout(context.Background(), answered.ID, "later"); !errors.Is(err, ErrInvalid) {
		t.Errorf("adjust-timeout to %q: %v", "later", err)
	}
}

func TestMediaTimeoutSparesHeldSessions(t *testing.T) {
	h := newHarness(t, `media-timeout = "30s"`+"\n")
	silent := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	held := h.alloc(t, AllocRequest{A: Endpoint{RTP: ap("192.0.2.10:4002"), Hold: true}, B: ep("10.0.0.10:5002")})
	h.mem.SetFlows()
	h.clk.advance(31 * time.Second)
	h.m.checkMedia(context.Background())
	if _, err := h.m.Get(silent.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("silent session: %v, want expired", err)
	}
	if _, err := h.m.Get(held.ID); err != nil {
		t.Errorf("held session: %v", err)
	}
}

func TestShowSumsFlowsPerLeg(t *testing.T) {
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	mark := relay.Mark(4 * s.Index)
	h.mem.SetFlows(relay.Flow{Mark: mark, Packets: 3, Bytes: 300, Src: ap("192.0.2.10:4000")}, relay.Flow{Mark: mark, Packets: 2, Bytes: 200})
	d, err := h.m.Show(context.Background(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if l := d.Legs[0]; l.Name != "a-rtp" || l.Packets != 5 || l.Bytes != 500 || l.Flows != 2 {
		t.Errorf("a-rtp leg stats %+v", l)
	}
}

func TestFindByGateNameOrAddress(t *testing.T) {
	h := newHarness(t, "")
	for _, tc := range []struct {
		from, to string
		want     Direction
	}{
		{"external", "internal", AToB}, {"10.0.0.1", "192.0.2.1", BToA},
	} {
		r, err := h.m.Find(tc.from, tc.to)
		if err != nil || len(r) != 1 || r[0] != (Route{"edge", tc.want}) {
			t.Errorf("Find(%s, %s) = %v, %v", tc.from, tc.to, r, err)
		}
	}
	if _, err := h.m.Find("mars", "internal"); !errors.Is(err, ErrUnknownSwitchboard) {
		t.Errorf("Find of an unknown gate: %v", err)
	}
}

func TestRestartRestoresSessionsAndRepairsTheKernel(t *testing.T) {
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000"), Labels: map[string]string{"call-id": "c1"}})
	h.m.Learn(relay.Flow{Mark: relay.Mark(4 * s.Index), Src: ap("198.51.100.7:61000"), Dst: s.GateA})
	gone := h.alloc(t, AllocRequest{})
	if err := h.m.Delete(context.Background(), gone.ID); err != nil {
		t.Fatal(err)
	}
	before := legsOf(t, h.mem)
	h.m.Close()
	// Behind the daemon's back: an orphan leg and an orphan flow.
	orphan := relay.Leg{Mark: relay.Mark(400), Gate: ap("192.0.2.1:30002"), Source: ap("10.0.0.1:30002")}
	if err := h.mem.Apply(context.Background(), relay.Batch{Add: []relay.Leg{orphan}}); err != nil {
		t.Fatal(err)
	}
	h.mem.SetFlows(relay.Flow{Mark: relay.Mark(999)})
	// A torn last journal record (a crash mid-write) is ignored.
	f, _ := os.OpenFile(filepath.Join(h.dir, journalName), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"op":"put","session":{"id":"tor`)
	f.Close()

	h.start(t, "")
	got, err := h.m.Get(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.A.Learned.RTP != ap("198.51.100.7:61000") || got.Labels["call-id"] != "c1" || got.GateA != s.GateA {
		t.Errorf("restored session %+v", got)
	}
	if diff := cmp.Diff(before, legsOf(t, h.mem), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("legs after restart (-before +after):\n%s", diff)
	}
	fl := h.mem.Flushed()
	if len(fl) < 2 || !contains(fl, relay.Mark(400)) || !contains(fl, relay.Mark(999)) {
		t.Errorf("flushed %x, want the orphan leg's and the orphan flow's marks", fl)
	}
	if _, err := h.m.Update(context.Background(), s.ID, UpdateRequest{B: epp("10.0.0.11:6000")}); err != nil {
		t.Errorf("update after restart: %v", err)
	}
	if err := h.m.Delete(context.Background(), s.ID); err != nil {
		t.Errorf("delete after restart: %v", err)
	}
}

func contains(l []uint32, x uint32) bool {
	for _, v := range l {
		if v == x {
			return true
		}
	}
	return false
}

func TestRemovedSwitchboardDropsItsSessionsAtStart(t *testing.T) {
	h := newHarness(t, "")
	h.alloc(t, AllocRequest{})
	h.m.Close()
	cfg := strings.ReplaceAll(`state-dir = %q
[[switchboard]]
name = "other"
gate-a = { address = "192.0.2.2", ports = "30000-30003" }
gate-b = { address = "10.0.0.2", ports = "30000-30003" }
`, "%q", fmt.Sprintf("%q", h.dir))
	c, err := ParseConfig([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(c, h.mem, Options{Now: h.clk.Now})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(m.List()) != 0 || len(legsOf(t, h.mem)) != 0 {
		t.Errorf("%d sessions, %d legs after the switchboard was removed", len(m.List()), len(legsOf(t, h.mem)))
	}
}

func TestJournalCompactionKeepsState(t *testing.T) {
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	for i := range 5000 {
		e := ep(fmt.Sprintf("10.0.0.10:%d", 5000+2*(i%100)))
		if _, err := h.m.Update(context.Background(), s.ID, UpdateRequest{B: &e}); err != nil {
			t.Fatal(err)
		}
	}
	last, _ := h.m.Get(s.ID)
	h.m.Close()
	h.start(t, "")
	got, err := h.m.Get(s.ID)
	if err != nil || got.B.Signalled != last.B.Signalled {
		t.Fatalf("after compaction and restart: %v, b %v want %v", err, got.B.Signalled, last.B.Signalled)
	}
	if fi, _ := os.Stat(filepath.Join(h.dir, journalName)); fi.Size() > 64<<10 {
		t.Errorf("journal is %d bytes for one session: not compacted", fi.Size())
	}
}
