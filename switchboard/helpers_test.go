package switchboard

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
func ap(s string) netip.AddrPort   { return netip.MustParseAddrPort(s) }
func ep(rtp string) Endpoint       { return Endpoint{RTP: ap(rtp)} }
func epp(rtp string) *Endpoint     { e := ep(rtp); return &e }

// addrs lets cmp compare netip values, whose fields are unexported.
var addrs = cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{}, netip.Prefix{})

// legsOf returns the legs m holds, sorted by mark.
func legsOf(t *testing.T, m *relaytest.Memory) []relay.Leg {
	t.Helper()
	l, err := m.Legs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// clock is a settable fake time, safe for concurrent use.
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

// harness is a Manager over an in-memory dataplane with a fake clock. Its
// switchboard "edge" has two port pairs per gate: 30000 and 30002.
type harness struct {
	m   *Manager
	mem *relaytest.Memory
	clk *clock
	dir string
	cfg *Config
	// mode, when set, is how both gates learn (newHarnessLearning).
	mode LearnMode
}

const edgeConfig = `state-dir = %q
[[switchboard]]
name = "edge"
gate-a = { name = "external", address = "192.0.2.1", ports = "30000-30003" }
gate-b = { name = "internal", address = "10.0.0.1", ports = "30000-30003" }
%s`

func newHarness(t *testing.T, extra string) *harness {
	t.Helper()
	h := &harness{mem: relaytest.NewMemory(), clk: &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, dir: t.TempDir()}
	h.start(t, extra)
	return h
}

// newHarnessLearning is newHarness with both gates learning in mode: tests
// of what learning does, whoever the source, use "any".
func newHarnessLearning(t *testing.T, mode LearnMode, extra string) *harness {
	t.Helper()
	h := &harness{mem: relaytest.NewMemory(), clk: &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, dir: t.TempDir(), mode: mode}
	h.start(t, extra)
	return h
}

// learningConfig is edgeConfig with both gates learning in mode.
func learningConfig(dir string, mode LearnMode, extra string) string {
	cfg := fmt.Sprintf(edgeConfig, dir, extra)
	return strings.ReplaceAll(cfg, `ports = "30000-30003" }`, fmt.Sprintf(`ports = "30000-30003", learn = %q }`, mode))
}

// start (re)starts the harness's Manager with the edge configuration plus
// extra on the same dataplane and state directory.
func (h *harness) start(t *testing.T, extra string) {
	t.Helper()
	if h.mode != "" {
		h.startWith(t, learningConfig(h.dir, h.mode, extra))
		return
	}
	h.startWith(t, fmt.Sprintf(edgeConfig, h.dir, extra))
}

func (h *harness) startWith(t *testing.T, toml string) {
	t.Helper()
	cfg, err := ParseConfig([]byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	h.cfg = cfg
	m := NewManager(cfg, h.mem, Options{Now: h.clk.Now, PickPort: func(int) int { return 0 }})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.m = m
	t.Cleanup(func() { m.Close() })
}

// startListing restarts the Manager as start does and returns how often
// its Start listed the table (zero: it trusted the journal).
func (h *harness) startListing(t *testing.T, extra string) int {
	t.Helper()
	before := h.mem.LegsRead()
	h.start(t, extra)
	return h.mem.LegsRead() - before
}

// alloc allocates on "edge" unless r names a switchboard.
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

func (h *harness) get(t *testing.T, id string) *Session {
	t.Helper()
	s, err := h.m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// leg returns leg k (legARTP…legBRTCP) of s as the dataplane holds it.
func (h *harness) leg(t *testing.T, s *Session, k uint32) relay.Leg {
	t.Helper()
	for _, l := range legsOf(t, h.mem) {
		if l.Mark == relay.Mark(4*s.Index+k) {
			return l
		}
	}
	t.Fatalf("leg %d of session %s is not installed", k, s.ID)
	return relay.Leg{}
}

// flow is a new flow of leg k of s from src into that leg's gate.
func flow(s *Session, k uint32, src string) relay.Flow {
	gate := s.GateA
	if k == legBRTP || k == legBRTCP {
		gate = s.GateB
	}
	if k == legARTCP || k == legBRTCP {
		gate = netipAddPort(gate, 1)
	}
	return relay.Flow{Mark: relay.Mark(4*s.Index + k), Src: ap(src), Dst: gate}
}

func diffLegsOf(t *testing.T, want, got []relay.Leg) string {
	t.Helper()
	return cmp.Diff(want, got, addrs, cmpopts.EquateEmpty())
}

// restartKeeps restarts h's Manager and fails the test unless it lists
// want, what the sessions were before, after what.
func (h *harness) restartKeeps(t *testing.T, want []*Session, after string) {
	t.Helper()
	h.m.Close()
	h.start(t, "")
	if diff := cmp.Diff(want, h.m.List(), addrs); diff != "" {
		t.Errorf("sessions after %s and a restart (-want +got):\n%s", after, diff)
	}
}
