package switchboard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMaxSessionsRefusesAllocsAndFreesOnDelete(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "max-sessions = 1\n")
	ctx := context.Background()
	first := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	legs, applied := legsOf(t, h.mem), h.mem.Applied()
	_, err := h.m.Alloc(ctx, AllocRequest{Switchboard: "edge"})
	if !errors.Is(err, ErrSessionLimit) {
		t.Fatalf("error %v, want ErrSessionLimit", err)
	}
	if diff := cmp.Diff(`switchboard "edge": session limit reached: max-sessions 1`, err.Error()); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
	if h.mem.Applied() != applied || len(h.m.List()) != 1 {
		t.Errorf("the refused alloc applied %d batches and left %d sessions", h.mem.Applied()-applied, len(h.m.List()))
	}
	if diff := diffLegsOf(t, legs, legsOf(t, h.mem)); diff != "" {
		t.Errorf("legs (-before +after):\n%s", diff)
	}
	if _, err := h.m.AllocPorts(ctx, AllocRequest{Switchboard: "edge"}, 30002, 30002); !errors.Is(err, ErrSessionLimit) {
		t.Errorf("AllocPorts on a full switchboard: error %v, want ErrSessionLimit", err)
	}
	if err := h.m.Delete(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
}

func TestMaxSessionsCountsRestoredSessions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	h.start(t, "max-sessions = 1\n")
	if _, err := h.m.Alloc(context.Background(), AllocRequest{Switchboard: "edge"}); !errors.Is(err, ErrSessionLimit) {
		t.Errorf("error %v, want ErrSessionLimit", err)
	}
}

func TestLabelLimitsRefuseAllocAndUpdate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	many := map[string]string{}
	for i := range MaxLabels + 1 {
		many[fmt.Sprint("k", i)] = "v"
	}
	big := map[string]string{"ref": strings.Repeat("x", MaxLabelBytes)}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   string
	}{
		{"too many labels", many, "request exceeds a limit: 33 labels, above the limit of 32 per session"},
		{"a label too large", big, `request exceeds a limit: label "ref": 1027 bytes, above the limit of 1024 per label`},
	} {
		_, err := h.m.Alloc(ctx, AllocRequest{Switchboard: "edge", Labels: tc.labels})
		if !errors.Is(err, ErrTooLarge) || errString(err) != tc.want {
			t.Errorf("alloc with %s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	s := h.alloc(t, AllocRequest{Labels: map[string]string{"k0": "v"}})
	half := map[string]string{}
	for i := range MaxLabels {
		half[fmt.Sprint("n", i)] = "v"
	}
	_, err := h.m.Update(ctx, s.ID, UpdateRequest{Labels: half})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("update growing the labels past the limit: error %v, want ErrTooLarge", err)
	}
	if got := h.get(t, s.ID).Labels; len(got) != 1 {
		t.Errorf("the refused update left %d labels, want 1", len(got))
	}
}
