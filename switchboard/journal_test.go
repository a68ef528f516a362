package switchboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/relay/relaytest"
)

// faultyFile is a journal file that writes only the first n bytes of the
// next write and then fails with err (a short write when err is nil), and
// fails its first truncateFails truncations.
type faultyFile struct {
	journalFile
	n             int
	err           error
	truncateFails int
}

func (f *faultyFile) Write(b []byte) (int, error) {
	if f.n >= len(b) {
		return f.journalFile.Write(b)
	}
	n, err := f.journalFile.Write(b[:f.n])
	if err != nil {
		return n, err
	}
	return n, f.err
}

func (f *faultyFile) Truncate(size int64) error {
	if f.truncateFails > 0 {
		f.truncateFails--
		return fmt.Errorf("injected: truncate: %w", syscall.EIO)
	}
	return f.journalFile.Truncate(size)
}

// inject makes the journal of h write through a faultyFile and returns it.
func (h *harness) inject(f *faultyFile) *faultyFile {
	f.journalFile = h.m.j.f
	h.m.j.f = f
	return f
}

func (h *harness) journalBytes(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.dir, journalName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A failed or short write is cut back: the journal holds exactly the
// records before it, the request is refused, and the next record reads
// back after a restart.
func TestAFailedJournalWriteLeavesNoTornRecord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		file faultyFile
	}{
		{"a disk that fills up within the record", faultyFile{n: 17, err: syscall.ENOSPC}},
		{"a disk that is full", faultyFile{n: 0, err: syscall.ENOSPC}},
		{"a short write without an error", faultyFile{n: 40}},
		{"a failed write whose cutting back fails once", faultyFile{n: 17, err: syscall.EIO, truncateFails: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, "")
			ctx := context.Background()
			s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
			before, legs := h.journalBytes(t), legsOf(t, h.mem)
			cutFails := tc.file.truncateFails > 0
			f := h.inject(&tc.file)
			_, err := h.m.Alloc(ctx, AllocRequest{Switchboard: "edge"})
			if err == nil {
				t.Fatal("alloc succeeded without its record")
			}
			if !cutFails && !bytes.Equal(before, h.journalBytes(t)) {
				t.Errorf("journal after the failed write:\n%q\nwant as before:\n%q", h.journalBytes(t), before)
			}
			if diff := diffLegsOf(t, legs, legsOf(t, h.mem)); diff != "" {
				t.Errorf("legs (-before +after):\n%s", diff)
			}
			f.n = 1 << 30 // the disk has room again
			again := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4002")})
			h.m.Close()
			h.start(t, "")
			if diff := cmp.Diff([]*Session{s, again}, h.m.List(), addrs); diff != "" {
				t.Errorf("sessions after a restart (-want +got):\n%s", diff)
			}
			if len(h.m.j.skips) != 0 {
				t.Errorf("the restart skipped %v", h.m.j.skips)
			}
		})
	}
}

// A delete whose record cannot be written is not done: the session, its
// legs and its ports stay, the caller gets an error, and a restart finds
// the session. Once the disk has room the delete succeeds.
func TestADeleteTheJournalCannotRecordIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	legs := legsOf(t, h.mem)
	f := h.inject(&faultyFile{n: 5, err: syscall.ENOSPC})
	err := h.m.Delete(ctx, s.ID)
	want := fmt.Sprintf("session %s: not deleted: journal %q: no space left on device", s.ID, filepath.Join(h.dir, journalName))
	if diff := cmp.Diff(want, errString(err)); diff != "" {
		t.Errorf("delete (-want +got):\n%s", diff)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("delete: %v is not ENOSPC", err)
	}
	if diff := diffLegsOf(t, legs, legsOf(t, h.mem)); diff != "" {
		t.Errorf("legs (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff([]*Session{s}, h.m.List(), addrs); diff != "" {
		t.Errorf("sessions (-before +after):\n%s", diff)
	}
	if free := h.m.boards["edge"].a.free; free != 1 {
		t.Errorf("gate-a has %d free pairs, want 1", free)
	}
	f.n = 1 << 30
	h.m.Close()
	h.start(t, "")
	if diff := cmp.Diff([]*Session{s}, h.m.List(), addrs); diff != "" {
		t.Errorf("sessions after a restart (-want +got):\n%s", diff)
	}
	if err := h.m.Delete(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	h.m.Close()
	h.start(t, "")
	if n := len(h.m.List()); n != 0 {
		t.Errorf("%d sessions after a delete and a restart, want none", n)
	}
}

// A ringing session whose expiry the journal refuses is expired again
// once the disk has room.
func TestAFailedExpiryIsTriedAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	s := h.alloc(t, AllocRequest{Ringing: true})
	f := h.inject(&faultyFile{err: syscall.ENOSPC})
	h.clk.advance(s.Expires.Sub(h.clk.Now()))
	h.m.fireDue(ctx)
	if _, err := h.m.Get(s.ID); err != nil {
		t.Fatalf("the session was expired without its record: %v", err)
	}
	f.n = 1 << 30
	h.clk.advance(retryExpiry)
	h.m.fireDue(ctx)
	if _, err := h.m.Get(s.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the session is still there after the retry: %v", err)
	}
}

// wideConfig has room for eight sessions.
const wideConfig = `state-dir = %q
[[switchboard]]
name = "edge"
gate-a = { address = "192.0.2.1", ports = "30000-30015" }
gate-b = { address = "10.0.0.1", ports = "30000-30015" }
`

// Whatever damage the journal has, start skips what it cannot read,
// names where, lists the kernel table for the rest and removes the legs of
// the sessions it lost; it then rewrites the journal so that the next
// start reads it whole and trusts it.
func TestStartSkipsWhatTheJournalCannotVouchFor(t *testing.T) {
	t.Parallel()
	// The journal written below: line 1 a gen record, lines 2–4 the
	// sessions 0–2.
	for _, tc := range []struct {
		name   string
		damage func(lines [][]byte) []byte
		kept   []int // sessions restored
		skips  func(off []int64) []skip
		// damaged: the journal is rewritten (something before its last line)
		damaged bool
	}{{
		name: "a bad record in the middle",
		damage: func(l [][]byte) []byte {
			return join(l[0], l[1], []byte("{\"op\":\"put\",\"session\":{\"id\":x}}\n"), l[3])
		},
		kept: []int{0, 2},
		skips: func(off []int64) []skip {
			return []skip{{off[2], 3, "invalid character 'x' looking for beginning of value"}}
		},
		damaged: true,
	}, {
		name:    "an unknown record in the middle",
		damage:  func(l [][]byte) []byte { return join(l[0], l[1], []byte("{\"op\":\"frobnicate\"}\n"), l[2], l[3]) },
		kept:    []int{0, 1, 2},
		skips:   func(off []int64) []skip { return []skip{{off[2], 3, `invalid record "{\"op\":\"frobnicate\"}"`}} },
		damaged: true,
	}, {
		name:    "a NUL block where a record was",
		damage:  func(l [][]byte) []byte { return join(l[0], l[1], make([]byte, len(l[2])), l[3]) },
		kept:    []int{0, 2},
		skips:   func(off []int64) []skip { return []skip{{off[2], 3, fmt.Sprintf("%d NUL bytes", off[3]-off[2])}} },
		damaged: true,
	}, {
		name:    "a NUL block at the end",
		damage:  func(l [][]byte) []byte { return join(l[0], l[1], l[2], l[3], make([]byte, 4096)) },
		kept:    []int{0, 1, 2},
		skips:   func(off []int64) []skip { return []skip{{off[4], 5, "4096 NUL bytes"}} },
		damaged: false,
	}, {
		name:   "a torn last record",
		damage: func(l [][]byte) []byte { return join(l[0], l[1], l[2], l[3][:30]) },
		kept:   []int{0, 1},
		skips: func(off []int64) []skip {
			return []skip{{off[3], 4, "torn last record (30 bytes without a newline)"}}
		},
	}, {
		name:   "a torn record with the next glued to it",
		damage: func(l [][]byte) []byte { return join(l[0], l[1], l[2][:30], l[3]) },
		kept:   []int{0, 2},
		skips: func(off []int64) []skip {
			return []skip{{off[2], 3, "torn record (30 bytes) before a whole one"}}
		},
		damaged: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &harness{mem: relaytest.NewMemory(), clk: &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, dir: t.TempDir()}
			cfg := fmt.Sprintf(wideConfig, h.dir)
			h.startWith(t, cfg)
			var all []*Session
			for i := range 3 {
				all = append(all, h.alloc(t, AllocRequest{A: ep(fmt.Sprintf("192.0.2.10:%d", 4000+2*i))}))
			}
			h.m.Close()
			lines := bytes.SplitAfter(h.journalBytes(t), []byte("\n"))
			if len(lines) != 5 || len(lines[4]) != 0 {
				t.Fatalf("journal before the damage has %d lines, want a gen record and 3 sessions:\n%q", len(lines), lines)
			}
			damaged := tc.damage(lines[:4])
			if err := os.WriteFile(filepath.Join(h.dir, journalName), damaged, 0o640); err != nil {
				t.Fatal(err)
			}
			off := make([]int64, len(lines)) // where line i+1 begins
			for i := 1; i < len(lines); i++ {
				off[i] = off[i-1] + int64(len(lines[i-1]))
			}

			listed := h.mem.LegsRead()
			h.startWith(t, cfg)
			if h.mem.LegsRead() == listed {
				t.Error("start trusted a damaged journal")
			}
			if diff := cmp.Diff(tc.skips(off), h.m.j.skips); diff != "" {
				t.Errorf("skipped (-want +got):\n%s", diff)
			}
			var want []*Session
			for _, i := range tc.kept {
				want = append(want, all[i])
			}
			if diff := cmp.Diff(want, h.m.List(), addrs); diff != "" {
				t.Errorf("sessions (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(marksOf(want), marksOf(nil, legsOf(t, h.mem)...)); diff != "" {
				t.Errorf("leg marks in the kernel (-want +got):\n%s", diff)
			}
			kept, err := os.ReadFile(filepath.Join(h.dir, journalName+".unreadable"))
			if tc.damaged != (err == nil) || (err == nil && !bytes.Equal(kept, damaged)) {
				t.Errorf("kept the damaged journal: %v (%d bytes), want %v", err == nil, len(kept), tc.damaged)
			}

			h.m.Close()
			listed = h.mem.LegsRead()
			h.startWith(t, cfg)
			if len(h.m.j.skips) != 0 || h.mem.LegsRead() != listed {
				t.Errorf("the next start skipped %v and listed the table %d times, want neither", h.m.j.skips, h.mem.LegsRead()-listed)
			}
			if diff := cmp.Diff(want, h.m.List(), addrs); diff != "" {
				t.Errorf("sessions after the next start (-want +got):\n%s", diff)
			}
		})
	}
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// marksOf returns the session indexes of sessions and of legs, sorted.
func marksOf(sessions []*Session, legs ...relay.Leg) []uint32 {
	var idx []uint32
	for _, s := range sessions {
		for k := range uint32(legsPerSession) {
			idx = append(idx, relay.Mark(4*s.Index+k))
		}
	}
	for _, l := range legs {
		idx = append(idx, l.Mark)
	}
	sort.Slice(idx, func(i, j int) bool { return idx[i] < idx[j] })
	return idx
}

// The write API takes several records at once (a group commit): a failure
// records none of them.
func TestAFailedWriteOfSeveralRecordsRecordsNone(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	before := h.journalBytes(t)
	h.inject(&faultyFile{n: 50, err: syscall.ENOSPC})
	if err := h.m.j.writeRecords(record{Op: "del", ID: "a"}, record{Op: "del", ID: "b"}); err == nil {
		t.Fatal("write succeeded")
	}
	if got := h.journalBytes(t); !bytes.Equal(before, got) {
		t.Errorf("journal after the failed write: %q, want %q", got, before)
	}
}

// The lock bits a compaction records are kept per entry (entry.locks) so
// that a compaction need not compute every session's legs: they must stay
// those of the installed legs through allocation, answer, the close of a
// learning window (a timer's commit) and a restart.
func TestEntryLocksFollowTheInstalledLegs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	check := func(when string) {
		t.Helper()
		h.m.mu.Lock()
		defer h.m.mu.Unlock()
		if len(h.m.sessions) == 0 {
			t.Fatalf("%s: no sessions", when)
		}
		for id, e := range h.m.sessions {
			if want := lockBits(h.m.installed(e)); e.locks != want {
				t.Errorf("%s: session %s: entry locks %04b, installed legs %04b", when, id, e.locks, want)
			}
		}
	}
	ringing := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	answered := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4002")})
	if _, err := h.m.Update(ctx, answered.ID, UpdateRequest{B: epp("10.0.0.10:5000"), Answer: true}); err != nil {
		t.Fatal(err)
	}
	check("after alloc and answer")
	h.clk.advance(time.Hour) // every learning window closes
	h.m.fireDue(ctx)
	check("after the learning windows closed")
	if got := lockBits(h.m.installed(h.m.sessions[answered.ID])); got == 0 {
		t.Fatalf("the answered session holds no lock after its windows closed: the test checks nothing")
	}
	h.m.Close()
	h.start(t, "")
	check("after a restart")
	_ = ringing
}

// compactInBackground makes the journal of h mostly history, so that the
// next commit starts a background compaction, and returns once it has.
func compactInBackground(t *testing.T, h *harness, s *Session) {
	t.Helper()
	ctx := context.Background()
	for i := range compactEvery + 1 {
		b := ep(fmt.Sprintf("10.0.0.10:%d", 5000+2*(i%100)))
		if _, err := h.m.Update(ctx, s.ID, UpdateRequest{B: &b}); err != nil {
			t.Fatal(err)
		}
		h.m.mu.Lock()
		running := h.m.compaction.running
		h.m.mu.Unlock()
		if running {
			return
		}
	}
	t.Fatalf("no compaction started after %d updates", compactEvery+1)
}

// Requests go on while a compaction writes its snapshot without the lock;
// what they commit meanwhile is in the compacted journal.
func TestChangesDuringABackgroundCompactionAreKept(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	ctx := context.Background()
	written, release := make(chan struct{}), make(chan struct{})
	h.m.mu.Lock()
	h.m.compaction.written = func() { close(written); <-release }
	h.m.mu.Unlock()
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	other := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4002")})
	compactInBackground(t, h, s)
	<-written
	// The snapshot is written; these go to the old journal only.
	if err := h.m.Delete(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	late := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4004")})
	if _, err := h.m.Update(ctx, s.ID, UpdateRequest{B: epp("10.0.0.99:7000")}); err != nil {
		t.Fatal(err)
	}
	close(release)
	h.m.compaction.wg.Wait()
	fi, err := os.Stat(filepath.Join(h.dir, journalName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 64<<10 {
		t.Errorf("the journal holds %d bytes after the compaction: not compacted", fi.Size())
	}
	want := h.m.List()
	if len(want) != 2 || (want[0].ID != late.ID && want[1].ID != late.ID) {
		t.Fatalf("sessions before the restart: %v, want %s and %s", want, s.ID, late.ID)
	}
	h.restartKeeps(t, want, "a background compaction")
}

// A background compaction that cannot write its file leaves the journal in
// use as it was, and loses nothing.
func TestAFailedBackgroundCompactionLosesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	// A directory where the compaction writes its file: creating it fails.
	if err := os.Mkdir(filepath.Join(h.dir, journalName+".tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4000")})
	compactInBackground(t, h, s)
	h.m.compaction.wg.Wait()
	h.m.mu.Lock()
	retry := h.m.j.retry
	h.m.mu.Unlock()
	if retry == 0 {
		t.Fatalf("the failed compaction set no retry point: it did not fail, the test checks nothing")
	}
	late := h.alloc(t, AllocRequest{A: ep("192.0.2.10:4002")})
	if len(h.m.List()) != 2 {
		t.Fatalf("sessions before the restart: %v, want %s and %s", h.m.List(), s.ID, late.ID)
	}
	h.restartKeeps(t, h.m.List(), "a failed compaction")
}
