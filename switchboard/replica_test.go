package switchboard

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
)

// changes is a Replica that keeps what it is handed.
type changes struct{ recs [][]byte }

func (c *changes) Committed(_ string, rec []byte) { c.recs = append(c.recs, rec) }

// pair is an active harness publishing to a standby Manager on its own
// dataplane and state directory, sharing the clock.
type pair struct {
	active  *harness
	standby *Manager
	mem     *relaytest.Memory
	feed    *changes
}

func newPair(t *testing.T) *pair {
	t.Helper()
	p := &pair{active: newHarness(t, ""), mem: relaytest.NewMemory(), feed: &changes{}}
	h := p.active
	h.m.Close()
	m := NewManager(h.cfg, h.mem, Options{Now: h.clk.Now, Replica: p.feed})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.m = m
	t.Cleanup(func() { m.Close() })
	cfg, err := ParseConfig(fmt.Appendf(nil, edgeConfig, t.TempDir(), ""))
	if err != nil {
		t.Fatal(err)
	}
	p.standby = NewManager(cfg, p.mem, Options{Now: h.clk.Now, Standby: true})
	if err := p.standby.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.standby.Close() })
	return p
}

// follow applies the records published since the last call.
func (p *pair) follow(t *testing.T) {
	t.Helper()
	for _, r := range p.feed.recs {
		if err := p.standby.ApplyReplica(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	p.feed.recs = nil
}

func (p *pair) sameLegs(t *testing.T) {
	t.Helper()
	if d := diffLegsOf(t, legsOf(t, p.active.mem), legsOf(t, p.mem)); d != "" {
		t.Fatalf("standby's legs differ from the active's (-active +standby):\n%s", d)
	}
}

func TestStandbyInstallsWhatTheActiveCommits(t *testing.T) {
	p := newPair(t)
	h, ctx := p.active, context.Background()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000"), Labels: map[string]string{"call": "x"}})
	gone := h.alloc(t, AllocRequest{A: ep("192.0.2.11:4000")})
	h.m.Learn(h.mem.NewFlow(flow(s, legBRTP, "10.0.0.10:7000"))) // a learned source (NAT: another port), locked at once
	if err := h.m.Delete(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	p.follow(t)
	p.sameLegs(t)
	got, err := p.standby.Get(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.B.Learned.RTP != ap("10.0.0.10:7000") || got.Labels["call"] != "x" {
		t.Errorf("standby's session = %+v, want the learned source and the labels", got)
	}
	if _, err := p.standby.Get(gone.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted session on the standby: err = %v, want ErrNotFound", err)
	}
}

func TestStandbyFiresNoTimersUntilPromoted(t *testing.T) {
	p := newPair(t)
	h, ctx := p.active, context.Background()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000"), Ringing: true})
	p.follow(t)
	h.clk.advance(2 * time.Hour) // past the ringing deadline
	p.standby.fireDue(ctx)
	if _, err := p.standby.Get(s.ID); err != nil {
		t.Fatalf("a standby expired a ringing session: %v", err)
	}
	p.standby.Promote()
	p.standby.fireDue(ctx)
	if _, err := p.standby.Get(s.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("promoted standby kept an expired ringing session: err = %v", err)
	}
}

func TestStandbyRefusesRequests(t *testing.T) {
	p := newPair(t)
	ctx := context.Background()
	if _, err := p.standby.Alloc(ctx, AllocRequest{Switchboard: "edge"}); !errors.Is(err, ErrStandby) {
		t.Errorf("Alloc on a standby: err = %v, want ErrStandby", err)
	}
	if err := p.standby.Delete(ctx, "x"); !errors.Is(err, ErrStandby) {
		t.Errorf("Delete on a standby: err = %v, want ErrStandby", err)
	}
	if err := p.active.m.ApplyReplica(ctx, []byte(`{"op":"del","id":"x"}`)); err == nil {
		t.Error("an active Manager applied a replicated record")
	}
	if err := p.standby.ApplyReplica(ctx, []byte(`{"op":"put"}`)); err == nil {
		t.Error("a standby applied a put without a session")
	}
}

func TestStandbySnapshotReplacesWhatItMissed(t *testing.T) {
	p := newPair(t)
	h, ctx := p.active, context.Background()
	stale := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	p.follow(t)
	// Changes the standby misses: the session is deleted and its ports and
	// index taken by others.
	if err := h.m.Delete(ctx, stale.ID); err != nil {
		t.Fatal(err)
	}
	h.alloc(t, AllocRequest{A: ep("192.0.2.12:4000")})
	h.alloc(t, AllocRequest{A: ep("192.0.2.13:4000")})
	p.feed.recs = nil
	var snap [][]byte
	if err := h.m.Snapshot(func(recs map[string][]byte) {
		for _, r := range recs {
			snap = append(snap, r)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := p.standby.ReplaceReplica(ctx, snap); err != nil {
		t.Fatal(err)
	}
	p.sameLegs(t)
	if got, want := len(p.standby.List()), 2; got != want {
		t.Errorf("standby has %d sessions, want %d", got, want)
	}
	if len(p.feed.recs) != 0 {
		t.Errorf("Snapshot published %d changes", len(p.feed.recs))
	}
}

func TestPromotedStandbyPublishesAndDemotedActiveDoesNot(t *testing.T) {
	p := newPair(t)
	h, ctx := p.active, context.Background()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	p.follow(t)
	h.m.Demote()
	if _, err := h.m.Alloc(ctx, AllocRequest{Switchboard: "edge"}); !errors.Is(err, ErrStandby) {
		t.Fatalf("Alloc on a demoted Manager: err = %v, want ErrStandby", err)
	}
	p.standby.Promote()
	if err := p.standby.Delete(ctx, s.ID); err != nil {
		t.Fatalf("the promoted standby cannot delete a call of the old active: %v", err)
	}
	if len(p.feed.recs) != 0 {
		t.Errorf("a demoted Manager published %d changes", len(p.feed.recs))
	}
}
