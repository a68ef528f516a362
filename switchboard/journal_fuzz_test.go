package switchboard

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
)

// FuzzJournal starts a Manager on a journal of any content. Start never
// refuses (whatever the journal cannot vouch for is skipped); the kernel
// then holds exactly the legs of the sessions restored; and the journal it
// leaves reads back whole: a second start restores the same sessions and
// skips nothing. Seeded with real journals, whole, torn, zero-filled and
// glued.
func FuzzJournal(f *testing.F) {
	for _, j := range seedJournals(f) {
		f.Add(j)
		f.Add(j[:len(j)/2])
		f.Add(j[:len(j)-1])
		f.Add(append(bytes.Clone(j), make([]byte, 512)...))
		half := bytes.IndexByte(j[len(j)/2:], '\n') + len(j)/2
		f.Add(join(j[:half-20], j[half+1:]))                // a torn record glued to the next
		f.Add(join(j[:half/2], make([]byte, 64), j[half:])) // a NUL block in the middle
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, journalName), data, 0o640); err != nil {
			t.Fatal(err)
		}
		cfg, err := ParseConfig(fmt.Appendf(nil, wideConfig, dir))
		if err != nil {
			t.Fatal(err)
		}
		mem := relaytest.NewMemory()
		first := startFuzzed(t, cfg, mem)
		sessions := first.List()
		if diff := cmp.Diff(marksOf(sessions), marksOf(nil, legsOf(t, mem)...)); diff != "" {
			t.Errorf("leg marks in the kernel (-sessions +kernel):\n%s", diff)
		}
		first.Close()
		second := startFuzzed(t, cfg, mem)
		defer second.Close()
		if len(second.j.skips) != 0 {
			t.Errorf("the journal the first start left skips %v", second.j.skips)
		}
		if diff := cmp.Diff(sessions, second.List(), addrs, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("sessions of the second start (-first +second):\n%s", diff)
		}
	})
}

func startFuzzed(t *testing.T, cfg *Config, mem *relaytest.Memory) *Manager {
	t.Helper()
	m := NewManager(cfg, mem, Options{Now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }})
	if err := m.Start(context.Background()); err != nil {
		m.Close()
		t.Fatalf("start refused the journal: %v", err)
	}
	return m
}

// seedJournals are journals a Manager wrote: sessions allocated, updated,
// learned, answered and deleted, with and without a compaction.
func seedJournals(f *testing.F) [][]byte {
	f.Helper()
	dir := f.TempDir()
	cfg, err := ParseConfig(fmt.Appendf(nil, wideConfig, dir))
	if err != nil {
		f.Fatal(err)
	}
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	mem := relaytest.NewMemory()
	ctx := context.Background()
	var journals [][]byte
	for round := range 2 {
		m := NewManager(cfg, mem, Options{Now: clk.Now})
		if err := m.Start(ctx); err != nil {
			f.Fatal(err)
		}
		a, err := m.Alloc(ctx, AllocRequest{Switchboard: "edge", A: ep("192.0.2.10:4000"), Ringing: true, Labels: map[string]string{"call-id": "c1"}})
		if err != nil {
			f.Fatal(err)
		}
		b, err := m.Alloc(ctx, AllocRequest{Switchboard: "edge", A: ep("192.0.2.11:4000"), B: ep("10.0.0.11:5000")})
		if err != nil {
			f.Fatal(err)
		}
		m.Learn(mem.NewFlow(flow(b, legARTP, "192.0.2.99:7000")))
		if _, err := m.Update(ctx, a.ID, UpdateRequest{B: epp("10.0.0.10:5000"), Answer: true}); err != nil {
			f.Fatal(err)
		}
		clk.advance(time.Hour)
		m.fireDue(ctx)
		if round == 1 {
			if err := m.Delete(ctx, b.ID); err != nil {
				f.Fatal(err)
			}
		}
		m.Close()
		j, err := os.ReadFile(filepath.Join(dir, journalName))
		if err != nil {
			f.Fatal(err)
		}
		journals = append(journals, j)
	}
	return journals
}
