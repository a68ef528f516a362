package switchboard

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// state is what a request must leave as it was when it fails: sessions,
// free ports, legs and the journal's bytes.
func (h *harness) state(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, s := range h.m.List() {
		fmt.Fprintf(&b, "%s %s %s %s %s %v\n", s.ID, s.State, s.A.Signalled.RTP, s.B.Signalled.RTP, s.Updated, s.Labels)
	}
	bd := h.m.boards["edge"]
	fmt.Fprintf(&b, "free %d %d\n", bd.a.free, bd.b.free)
	for _, l := range legsOf(t, h.mem) {
		fmt.Fprintf(&b, "%#x %s %s %s %s\n", l.Mark, l.Gate, l.Peer, l.Source, l.Lock)
	}
	b.Write(h.journalBytes(t))
	return b.String()
}

func TestAChangeOfSeveralSessionsIsOneTransactionAndOneRecord(t *testing.T) {
	h := newGroupHarness(t)
	ctx := context.Background()
	old := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	gone := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4002")})
	applied, journal := h.mem.Applied(), len(h.journalBytes(t))
	res, err := h.m.Change(ctx, ChangeRequest{
		Alloc:  []AllocRequest{{Switchboard: "edge", A: ep("192.0.2.10:4004")}, {Switchboard: "edge", A: ep("192.0.2.10:4006")}},
		Update: []SessionUpdate{{ID: old.ID, UpdateRequest: UpdateRequest{B: epp("10.0.0.10:5000")}}},
		Delete: []string{gone.ID},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := h.mem.Applied() - applied; n != 1 {
		t.Errorf("%d kernel transactions, want 1", n)
	}
	if recs := strings.Count(string(h.journalBytes(t)[journal:]), "\n"); recs != 1 {
		t.Errorf("%d journal records, want 1", recs)
	}
	if len(res.Allocated) != 2 || len(res.Updated) != 1 || res.Updated[0].B.Signalled.RTP != ap("10.0.0.10:5000") {
		t.Fatalf("result %+v, want two allocated and the update", res)
	}
	if _, err := h.m.Get(gone.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted session: %v, want %v", err, ErrNotFound)
	}
	checkKernelAndJournal(t, h, append(res.Allocated, res.Updated...))
}

func TestARefusedChangeLeavesEverythingAsItWas(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func(h *harness)
		req    func(old *Session) ChangeRequest
		want   error
	}{
		{
			name: "its last alloc names no switchboard",
			req: func(old *Session) ChangeRequest {
				return ChangeRequest{Update: []SessionUpdate{{ID: old.ID, UpdateRequest: UpdateRequest{B: epp("10.0.0.10:5000")}}},
					Alloc: []AllocRequest{{Switchboard: "edge", A: ep("192.0.2.10:4004")}, {Switchboard: "nowhere"}}}
			},
			want: ErrUnknownSwitchboard,
		},
		{
			name: "it names a session twice",
			req: func(old *Session) ChangeRequest {
				return ChangeRequest{Update: []SessionUpdate{{ID: old.ID, UpdateRequest: UpdateRequest{B: epp("10.0.0.10:5000")}}},
					Delete: []string{old.ID}}
			},
			want: ErrInvalid,
		},
		{
			name:   "the kernel refuses it",
			inject: func(h *harness) { h.mem.FailNext(syscall.EPERM) },
			req: func(old *Session) ChangeRequest {
				return ChangeRequest{Update: []SessionUpdate{{ID: old.ID, UpdateRequest: UpdateRequest{B: epp("10.0.0.10:5000")}}},
					Alloc: []AllocRequest{{Switchboard: "edge", A: ep("192.0.2.10:4004")}, {Switchboard: "edge", A: ep("192.0.2.10:4006")}}}
			},
			want: syscall.EPERM,
		},
		{
			name:   "the journal cannot record it",
			inject: func(h *harness) { h.inject(&faultyFile{n: 10, err: syscall.ENOSPC}) },
			req: func(old *Session) ChangeRequest {
				return ChangeRequest{Update: []SessionUpdate{{ID: old.ID, UpdateRequest: UpdateRequest{B: epp("10.0.0.10:5000")}}},
					Alloc: []AllocRequest{{Switchboard: "edge", A: ep("192.0.2.10:4004")}}}
			},
			want: syscall.ENOSPC,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newGroupHarness(t)
			old := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000"), B: ep("10.0.0.10:4000")})
			before := h.state(t)
			if tc.inject != nil {
				tc.inject(h)
			}
			_, err := h.m.Change(context.Background(), tc.req(old))
			if !errors.Is(err, tc.want) {
				t.Fatalf("change: %v, want %v", err, tc.want)
			}
			if d := cmp.Diff(before, h.state(t)); d != "" {
				t.Errorf("a refused change changed state (-before +after):\n%s", d)
			}
		})
	}
}

func TestATxnRecordLoadsWholeOrNotAtAll(t *testing.T) {
	h := newGroupHarness(t)
	res, err := h.m.Change(context.Background(), ChangeRequest{
		Alloc: []AllocRequest{{Switchboard: "edge", A: ep("192.0.2.10:4004")}, {Switchboard: "edge", A: ep("192.0.2.10:4006")}}})
	if err != nil {
		t.Fatal(err)
	}
	checkKernelAndJournal(t, h, res.Allocated)

	j := &journal{locks: map[string]uint8{}}
	sessions := map[string]*Session{}
	bad := record{Op: "txn", Txn: []record{{Op: "put", Session: res.Allocated[0]}, {Op: "put"}}}
	if j.apply(sessions, bad) || len(sessions) != 0 {
		t.Errorf("a txn with an invalid record applied %d sessions, want it refused whole", len(sessions))
	}
	good := record{Op: "txn", Txn: []record{{Op: "put", Session: res.Allocated[0]}, {Op: "del", ID: res.Allocated[0].ID}}, Gen: 7}
	if !j.apply(sessions, good) || len(sessions) != 0 || j.tail != 7 {
		t.Errorf("a txn put then deleted: %d sessions, tail %d; want 0 and 7", len(sessions), j.tail)
	}
}
