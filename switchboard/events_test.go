package switchboard

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// nextEnd takes the next end from sub, failing if none is queued.
func nextEnd(t *testing.T, sub *Subscription) Ended {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	e, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("no session end published: %v", err)
	}
	return e
}

func TestEverySessionEndIsPublishedWithItsReason(t *testing.T) {
	h := newHarness(t, "[defaults]\nringing-timeout = \"30s\"\nmedia-timeout = \"60s\"\n")
	ctx := context.Background()
	sub := h.m.Subscribe()
	defer sub.Close()

	deleted := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000"), Labels: map[string]string{"call-id": "c1"}})
	if err := h.m.Delete(ctx, deleted.ID); err != nil {
		t.Fatal(err)
	}
	ringing := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4002"), Ringing: true})
	h.clk.advance(30 * time.Second)
	h.m.fireDue(ctx)

	var got []EndReason
	var ids []string
	for range 2 {
		e := nextEnd(t, sub)
		got, ids = append(got, e.Reason), append(ids, e.Session.ID)
	}
	if d := cmp.Diff([]EndReason{EndDeleted, EndRingingTimeout}, got); d != "" {
		t.Errorf("reasons (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{deleted.ID, ringing.ID}, ids); d != "" {
		t.Errorf("sessions (-want +got):\n%s", d)
	}

	silent := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:5000")})
	h.clk.advance(61 * time.Second)
	h.m.checkMedia(ctx)
	e := nextEnd(t, sub)
	if e.Reason != EndMediaTimeout || e.Session.ID != silent.ID {
		t.Errorf("media timeout published %s of %s, want %s of %s", e.Reason, e.Session.ID, EndMediaTimeout, silent.ID)
	}
	if e.Duration() != 61*time.Second {
		t.Errorf("duration %v, want 61s", e.Duration())
	}
}

func TestAnEndCarriesTheSessionsLabels(t *testing.T) {
	h := newHarness(t, "")
	sub := h.m.Subscribe()
	defer sub.Close()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), Labels: map[string]string{"call-id": "c1", "from-tag": "x"}})
	if err := h.m.Delete(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"call-id": "c1", "from-tag": "x"}, nextEnd(t, sub).Session.Labels); d != "" {
		t.Errorf("labels (-want +got):\n%s", d)
	}
}

func TestAClosedSubscriptionHearsNothingAndARefusedDeleteEndsNothing(t *testing.T) {
	h := newHarness(t, "")
	closed, open := h.m.Subscribe(), h.m.Subscribe()
	defer open.Close()
	closed.Close()
	if err := h.m.Delete(context.Background(), "nosuchsession"); err == nil {
		t.Fatal("deleting an unknown session succeeded")
	}
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	if err := h.m.Delete(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	if e := nextEnd(t, open); e.Session.ID != s.ID {
		t.Errorf("first end is of %s, want %s (a refused delete must publish nothing)", e.Session.ID, s.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if e, err := closed.Next(ctx); err == nil {
		t.Errorf("a closed subscription received the end of %s", e.Session.ID)
	}
}

func TestARestartPublishesTheSessionsItCannotRestore(t *testing.T) {
	h := newHarness(t, "")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	h.m.Close()
	cfg, err := ParseConfig([]byte(`state-dir = "` + h.dir + `"
[[switchboard]]
name = "other"
gate-a = { name = "external", address = "192.0.2.1", ports = "30000-30003" }
gate-b = { name = "internal", address = "10.0.0.1", ports = "30000-30003" }
`))
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(cfg, h.mem, Options{Now: h.clk.Now})
	sub := m.Subscribe()
	defer sub.Close()
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if e := nextEnd(t, sub); e.Reason != EndGone || e.Session.ID != s.ID {
		t.Errorf("restart published %s of %s, want %s of %s", e.Reason, e.Session.ID, EndGone, s.ID)
	}
}
