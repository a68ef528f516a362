package switchboard

import (
	"context"
	"testing"
	"time"
)

// An update that carries the answer ends ringing in the same kernel
// transaction, and the learning windows start at the answer.
func TestUpdateWithAnswerEndsRingingInOneTransaction(t *testing.T) {
	h := newHarness(t, `ringing-timeout = "60s"`+"\n")
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), Ringing: true})
	h.clk.advance(30 * time.Second)
	applied := h.mem.Applied()
	got, err := h.m.Update(context.Background(), s.ID, UpdateRequest{B: epp("10.0.0.10:5000"), Answer: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != Active || !got.Expires.IsZero() {
		t.Errorf("after the answer: state %s, expires %v", got.State, got.Expires)
	}
	if want := h.clk.Now().Add(10 * time.Second); !got.A.LearnUntil.Equal(want) || !got.B.LearnUntil.Equal(want) {
		t.Errorf("learning windows end %v / %v, want %v", got.A.LearnUntil, got.B.LearnUntil, want)
	}
	if n := h.mem.Applied() - applied; n != 1 {
		t.Errorf("%d kernel transactions for update+answer, want 1", n)
	}
}
