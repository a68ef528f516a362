package relay

import (
	"net/netip"
	"slices"
	"testing"
)

// TestBatchStaleAndFlushStale checks which marks a batch makes stale, for
// a request's few legs (scanned) and a restart's many (indexed) alike.
func TestBatchStaleAndFlushStale(t *testing.T) {
	leg := func(i uint32, peer, lock string) Leg {
		l := Leg{Mark: Mark(i), Gate: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(30000+i)),
			Source: netip.MustParseAddrPort("10.0.0.1:40000"), Peer: netip.MustParseAddrPort(peer)}
		if lock != "" {
			l.Lock = netip.MustParseAddrPort(lock)
		}
		return l
	}
	for _, n := range []uint32{1, 20} { // 4n legs: below and above the scan's limit
		var b Batch
		var want []uint32
		for i := range n {
			locked, repointed, gone, kept := 4*i, 4*i+1, 4*i+2, 4*i+3
			b.Remove = append(b.Remove, leg(locked, "10.0.0.10:5000", ""), leg(repointed, "10.0.0.10:5000", ""),
				leg(gone, "10.0.0.10:5000", ""))
			b.Add = append(b.Add, leg(locked, "10.0.0.10:5000", "192.0.2.10:4000"), leg(repointed, "10.0.0.11:5000", ""),
				leg(kept, "10.0.0.10:5000", ""))
			want = append(want, Mark(repointed), Mark(gone))
		}
		if got := b.Stale(); !slices.Equal(got, want) {
			t.Errorf("%d legs: Stale() = %#x, want %#x (a leg that only gains a lock keeps its flows)", len(b.Add), got, want)
		}
		b.Flush = []uint32{Mark(999)}
		if got, wantFlush := b.FlushStale().Flush, append([]uint32{Mark(999)}, want...); !slices.Equal(got, wantFlush) {
			t.Errorf("%d legs: FlushStale().Flush = %#x, want %#x (Flush, then the stale marks)", len(b.Add), got, wantFlush)
		}
		if len(b.Flush) != 1 {
			t.Errorf("FlushStale changed its receiver's Flush to %#x", b.Flush)
		}
	}
}
