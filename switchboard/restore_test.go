package switchboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
)

func TestStartSetsUpTheConfiguredGates(t *testing.T) {
	t.Parallel()
	h := newHarness(t, v6)
	want := []relay.Gate{
		{Addr: mustAddr("192.0.2.1"), First: 30000, Last: 30003, Zone: relay.ZoneA},
		{Addr: mustAddr("10.0.0.1"), First: 30000, Last: 30003, Zone: relay.ZoneB},
		{Addr: mustAddr("2001:db8::1"), First: 40000, Last: 40003, Zone: relay.ZoneA},
		{Addr: mustAddr("2001:db8::1"), First: 40004, Last: 40007, Zone: relay.ZoneB},
	}
	if diff := cmp.Diff(want, h.mem.Gates(), addrs); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestStartFailsWhenTheKernelRefusesTheTable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	h.m.Close()
	injected := errors.New("operation not permitted")
	h.mem.FailNext(injected)
	m := NewManager(h.cfg, h.mem, Options{Now: h.clk.Now})
	defer m.Close()
	err := m.Start(context.Background())
	if !errors.Is(err, injected) || err.Error() != "start: operation not permitted" {
		t.Errorf("Start: %v, want the kernel's error after %q", err, "start: ")
	}
}

func TestRestartRestoresSessionsAndLeavesTheKernelAlone(t *testing.T) {
	t.Parallel()
	h := newHarnessLearning(t, LearnAny, "ringing-timeout = 60\n")
	ctx := context.Background()
	learned := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000"), Labels: map[string]string{"call-id": "c1"}})
	h.m.Learn(h.mem.NewFlow(flow(learned, legARTP, "198.51.100.7:61000")))
	gone := h.alloc(t, AllocRequest{})
	if err := h.m.Delete(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	ringing := h.alloc(t, AllocRequest{B: ep("10.0.0.10:5002"), Ringing: true})
	if _, err := h.m.Update(ctx, ringing.ID, UpdateRequest{A: epp("192.0.2.10:4002")}); err != nil {
		t.Fatal(err)
	}
	sessions, legs := h.m.List(), legsOf(t, h.mem)
	applied, flushed := h.mem.Applied(), h.mem.Flushed()
	if err := h.m.Close(); err != nil {
		t.Fatal(err)
	}

	if got := h.startListing(t, "ringing-timeout = 60\n"); got != 0 {
		t.Errorf("start listed the table %d times; nothing changed since the journal's last record", got)
	}
	if diff := cmp.Diff(sessions, h.m.List(), addrs); diff != "" {
		t.Errorf("sessions (-before +after):\n%s", diff)
	}
	if diff := diffLegsOf(t, legs, legsOf(t, h.mem)); diff != "" {
		t.Errorf("legs (-before +after):\n%s", diff)
	}
	if got := h.mem.Applied() - applied; got != 1 {
		t.Errorf("start applied %d batches, want only the empty flush of orphans", got)
	}
	if diff := cmp.Diff(flushed, h.mem.Flushed()); diff != "" {
		t.Errorf("flushed (-before +after):\n%s", diff)
	}

	// The ports are held again: the gate is full.
	if _, err := h.m.Alloc(ctx, AllocRequest{Switchboard: "edge"}); !errors.Is(err, ErrPortsExhausted) {
		t.Errorf("alloc with both pairs restored: %v, want ErrPortsExhausted", err)
	}
	if _, err := h.m.Update(ctx, learned.ID, UpdateRequest{B: epp("10.0.0.11:6000")}); err != nil {
		t.Errorf("update after restart: %v", err)
	}
	if l := h.leg(t, learned, legARTP); l.Peer != ap("10.0.0.11:6000") || l.Lock != ap("198.51.100.7:61000") {
		t.Errorf("a-rtp after the update: %+v", l)
	}
	if err := h.m.Delete(ctx, learned.ID); err != nil {
		t.Errorf("delete after restart: %v", err)
	}
	fresh := h.alloc(t, AllocRequest{})
	if fresh.Index == ringing.Index {
		t.Errorf("a new session took index %d of a restored one", fresh.Index)
	}
	// The restored ringing deadline still fires.
	h.clk.advance(time.Minute)
	h.m.fireDue(ctx)
	if _, err := h.m.Get(ringing.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("restored ringing session after its deadline: %v, want expired", err)
	}
}

func TestStartRepairsTheKernelToMatchTheSessions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	want := legsOf(t, h.mem)
	h.m.Close()

	// Behind the daemon's back: a leg vanished, one was changed, and two
	// legs and a flow belong to no session.
	changed := want[legARTP]
	changed.Peer = ap("10.0.0.66:6666")
	orphans := []relay.Leg{
		{Mark: relay.Mark(400), Gate: ap("192.0.2.1:30002"), Source: ap("10.0.0.1:30002"), Peer: ap("10.0.0.20:2000")},
		{Mark: relay.Mark(401), Gate: ap("10.0.0.1:30003"), Source: ap("192.0.2.1:30003"), Lock: ap("192.0.2.20:2001")},
	}
	if _, err := h.mem.Apply(ctx, relay.Batch{Remove: []relay.Leg{want[legARTP], want[legBRTCP]}, Add: append([]relay.Leg{changed}, orphans...)}); err != nil {
		t.Fatal(err)
	}
	h.mem.SetFlows(
		relay.Flow{Mark: relay.Mark(999), Src: ap("203.0.113.9:1234")},
		flow(s, legBRTP, "10.0.0.10:5000"),
	)
	flushed := len(h.mem.Flushed())

	if h.startListing(t, "") == 0 {
		t.Error("start trusted the journal although the kernel changed since its last record")
	}
	if diff := diffLegsOf(t, want, legsOf(t, h.mem)); diff != "" {
		t.Errorf("legs after start (-want +got):\n%s", diff)
	}
	wantFlushed := []uint32{relay.Mark(4*s.Index + legARTP), relay.Mark(400), relay.Mark(401), relay.Mark(999)}
	if diff := cmp.Diff(wantFlushed, h.mem.Flushed()[flushed:], cmpopts.SortSlices(func(a, b uint32) bool { return a < b })); diff != "" {
		t.Errorf("flushed marks (-want +got):\n%s", diff)
	}
}

func TestStartReadsAJournalCutShortByACrash(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	h.m.Close()
	appendJournal(t, h.dir, `{"op":"put","session":{"id":"tor`)
	h.start(t, "")
	if diff := cmp.Diff([]*Session{s}, h.m.List(), addrs); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// The torn record is gone: appending after it still reads back.
	h.alloc(t, AllocRequest{})
	h.m.Close()
	h.start(t, "")
	if n := len(h.m.List()); n != 2 {
		t.Errorf("%d sessions after another restart, want 2", n)
	}
}

func appendJournal(t *testing.T, dir, s string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, journalName), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestStartDropsSessionsTheConfigNoLongerHolds(t *testing.T) {
	t.Parallel()
	const core = `
[[switchboard]]
name = "core"
gate-a = { address = "192.0.2.2", ports = "30000-30003" }
gate-b = { address = "10.0.0.2", ports = "30000-30003" }
`
	for _, tc := range []struct {
		name, edge string // the edge switchboard in the new config
	}{
		{"a switchboard removed from the config", ""},
		{"a gate moved to another address", strings.Replace(edgeSwitchboard, `"10.0.0.1"`, `"10.0.0.9"`, 1)},
		{"a port range that no longer holds the ports", strings.Replace(edgeSwitchboard, `"30000-30003" }`+"\ngate-b", `"31000-31003" }`+"\ngate-b", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, core)
			dropped := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
			kept := h.alloc(t, AllocRequest{Switchboard: "core", A: ep("192.0.2.10:4000")})
			keptLegs := legsOf(t, h.mem)[4:]
			h.m.Close()
			h.startWith(t, fmt.Sprintf("state-dir = %q\n%s%s", h.dir, tc.edge, core))
			if diff := cmp.Diff([]*Session{kept}, h.m.List(), addrs); diff != "" {
				t.Errorf("sessions (-want +got):\n%s", diff)
			}
			if diff := diffLegsOf(t, keptLegs, legsOf(t, h.mem)); diff != "" {
				t.Errorf("legs (-want +got):\n%s", diff)
			}
			if !contains(h.mem.Flushed(), relay.Mark(4*dropped.Index)) {
				t.Errorf("flushed %x, want the dropped session's marks", h.mem.Flushed())
			}
		})
	}
}

const edgeSwitchboard = `[[switchboard]]
name = "edge"
gate-a = { name = "external", address = "192.0.2.1", ports = "30000-30003" }
gate-b = { name = "internal", address = "10.0.0.1", ports = "30000-30003" }
`

func TestJournalCompactionKeepsTheState(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	other := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4002")})
	for i := range 5000 {
		b := ep(fmt.Sprintf("10.0.0.10:%d", 5000+2*(i%100)))
		if _, err := h.m.Update(ctx, s.ID, UpdateRequest{B: &b}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.m.Delete(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	// The compaction runs in the background: wait for it, or a slow
	// machine stats the journal before it is installed.
	h.m.compaction.wg.Wait()
	want := h.m.List()
	fi, err := os.Stat(filepath.Join(h.dir, journalName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 1<<20 {
		t.Errorf("the journal holds %d bytes after 5000 updates of one session: not compacted", fi.Size())
	}
	h.restartKeeps(t, want, "compaction")
}

// Whenever the kernel's ruleset generation is not the one the journal's
// last record carries, something the journal does not know of may have
// changed the table: start lists it.
func TestStartListsTheTableWhenTheGenerationMoved(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, h *harness)
	}{
		{"someone else committed while the daemon was down", func(t *testing.T, h *harness) {
			h.m.Close()
			h.mem.Foreign()
		}},
		{"someone else committed while the daemon ran", func(t *testing.T, h *harness) {
			h.mem.Foreign()
			h.alloc(t, AllocRequest{A: ep("192.0.2.10:4002")}) // stamped, but the kernel is ahead
			h.m.Close()
		}},
		{"a batch failed while the daemon ran", func(t *testing.T, h *harness) {
			h.mem.FailNext(errors.New("injected"))
			if _, err := h.m.Alloc(context.Background(), AllocRequest{Switchboard: "edge"}); err == nil {
				t.Fatal("alloc with an injected failure succeeded")
			}
			h.alloc(t, AllocRequest{A: ep("192.0.2.10:4002")})
			h.m.Close()
		}},
		{"the daemon was killed between a transaction and its record", func(t *testing.T, h *harness) {
			h.m.Close()
			orphan := relay.Leg{Mark: relay.Mark(400), Gate: ap("192.0.2.1:30002"), Source: ap("10.0.0.1:30002")}
			if _, err := h.mem.Apply(context.Background(), relay.Batch{Add: []relay.Leg{orphan}}); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, "")
			h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
			tc.setup(t, h)
			sessions := h.m.List()
			var want []relay.Leg
			for _, s := range sessions {
				l := s.legs(h.cfg.Switchboards[0], h.clk.Now())
				want = append(want, l[:]...)
			}
			if h.startListing(t, "") == 0 {
				t.Error("start trusted the journal")
			}
			if diff := diffLegsOf(t, want, legsOf(t, h.mem)); diff != "" {
				t.Errorf("legs after start (-want +got):\n%s", diff)
			}
			h.m.Close()
			if h.startListing(t, "") != 0 {
				t.Error("the start after a repairing start listed the table again")
			}
		})
	}
}

// A trusted start knows which legs the kernel holds locked: locks installed
// by a closing learning window are kept, and a window that closed while the
// daemon was down gets its locks installed.
func TestTrustedStartKnowsTheInstalledLocks(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	locked := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	h.clk.advance(time.Hour)
	h.m.fireDue(ctx) // the learning windows close: the legs lock to the signalled peers
	open := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4002"), B: ep("10.0.0.10:5002")})
	if l := h.leg(t, locked, legARTP); l.Lock != ap("192.0.2.10:4000") {
		t.Fatalf("a-rtp of the answered session after its window: lock %s", l.Lock)
	}
	if l := h.leg(t, open, legARTP); l.Lock.IsValid() {
		t.Fatalf("a-rtp of the new session: lock %s, want none yet", l.Lock)
	}
	h.m.Close()

	h.clk.advance(time.Hour) // the new session's windows close while the daemon is down
	applied := h.mem.Applied()
	if h.startListing(t, "") != 0 {
		t.Error("start listed the table; nothing changed since the journal's last record")
	}
	if got := h.mem.Applied() - applied; got != 3 {
		t.Errorf("start applied %d batches, want 3: the unlocked legs out, the locked ones in, the empty flush of orphans", got)
	}
	for _, s := range []*Session{locked, open} {
		if l := h.leg(t, s, legARTP); l.Lock != s.A.Signalled.RTP {
			t.Errorf("a-rtp of session %s after the restart: lock %s, want %s", s.ID, l.Lock, s.A.Signalled.RTP)
		}
	}
}

// A journal record that failed to be written may leave the kernel apart
// from the journal (had the rollback failed too, a deleted session's legs
// would be gone): nothing written after it is trusted, and start repairs
// from the table.
func TestStartListsTheTableAfterAJournalWriteFailed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	gone := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	f := h.inject(&faultyFile{err: syscall.ENOSPC})
	if err := h.m.Delete(ctx, gone.ID); err == nil {
		t.Fatal("delete succeeded without its record")
	}
	if _, err := h.mem.Apply(ctx, relay.Batch{Remove: legsOf(t, h.mem)}); err != nil { // as a failed rollback would
		t.Fatal(err)
	}
	f.n = 1 << 30
	h.alloc(t, AllocRequest{A: ep("192.0.2.10:4002")})
	h.m.Close()

	if h.startListing(t, "") == 0 {
		t.Error("start trusted a journal that missed a record")
	}
	// The session the journal kept is back, with its legs.
	if back := h.get(t, gone.ID); h.leg(t, back, legARTP).Gate != back.GateA {
		t.Errorf("the restored session's a-rtp leg is not installed")
	}
}

// A journal written before records carried locks and generations (or by a
// daemon that could not read the generation) is listed against once; the
// start rewrites it with both, and the next start trusts it.
func TestStartListsTheTableForAJournalWithoutGenerations(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	h.m.Close()
	b, err := json.Marshal(record{Op: "put", Session: s})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.dir, journalName), append(b, '\n'), 0o640); err != nil {
		t.Fatal(err)
	}
	if n := h.startListing(t, ""); n != 1 {
		t.Errorf("start listed the table %d times, want once", n)
	}
	if diff := cmp.Diff([]*Session{s}, h.m.List(), addrs); diff != "" {
		t.Errorf("sessions (-want +got):\n%s", diff)
	}
	h.m.Close()
	if h.startListing(t, "") != 0 {
		t.Error("the next start listed the table again")
	}
}

// Should the kernel refuse the repair the journal implies, start does not
// fail on the journal's word: it lists the table and repairs from that.
func TestTrustedStartListsTheTableWhenTheKernelRefusesTheRepair(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	h.m.Close()
	h.clk.advance(time.Hour) // the learning windows close: start must lock the legs
	m := NewManager(h.cfg, &failFirstApply{Memory: h.mem}, Options{Now: h.clk.Now})
	defer m.Close()
	listed := h.mem.LegsRead()
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.mem.LegsRead() != listed+1 {
		t.Error("start did not list the table after the kernel refused the journal's repair")
	}
	if l := h.leg(t, s, legARTP); l.Lock != ap("192.0.2.10:4000") {
		t.Errorf("a-rtp after the start: lock %s, want the signalled peer", l.Lock)
	}
}

// failFirstApply fails the first batch that changes legs.
type failFirstApply struct {
	*relaytest.Memory
	failed bool
}

func (f *failFirstApply) Apply(ctx context.Context, b relay.Batch) (relay.Generation, error) {
	if !f.failed && len(b.Remove)+len(b.Add) > 0 {
		f.failed = true
		return relay.Generation{}, errors.New("injected: no such element")
	}
	return f.Memory.Apply(ctx, b)
}

// A source the kernel learned while the daemon was down is recorded at the
// next start: the gate locks to it and the other side sends to it.
func TestStartRecordsWhatTheKernelLearnedMeanwhile(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	if err := h.m.Close(); err != nil {
		t.Fatal(err)
	}
	leg := h.leg(t, s, legARTP)
	learned := leg
	learned.Learned = ap("192.0.2.10:61000") // as the kernel's rule adds it
	if _, err := h.mem.Apply(ctx, relay.Batch{Remove: []relay.Leg{leg}, Add: []relay.Leg{learned}}); err != nil {
		t.Fatal(err)
	}
	h.start(t, "")
	x, err := h.m.Get(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if x.A.Learned.RTP != ap("192.0.2.10:61000") {
		t.Errorf("a learned %s after the restart, want what the kernel learned", x.A.Learned.RTP)
	}
	if l := h.leg(t, s, legARTP); l.Lock != ap("192.0.2.10:61000") || l.Learned != l.Lock {
		t.Errorf("a-rtp after the restart: %+v, want locked to the learned source", l)
	}
	if p := h.leg(t, s, legBRTP).Peer; p != ap("192.0.2.10:61000") {
		t.Errorf("b-rtp sends to %s, want the learned source", p)
	}
	h.start(t, "") // and the journal kept it
	if x, _ := h.m.Get(s.ID); x.A.Learned.RTP != ap("192.0.2.10:61000") {
		t.Errorf("a learned %s after a second restart", x.A.Learned.RTP)
	}
}
