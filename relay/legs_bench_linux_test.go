//go:build linux && integration

package relay

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// sessionLegs returns the four legs of n sessions as the switchboard makes
// them: gate-a and gate-b address:port pairs spread over enough gate
// addresses for 100k sessions, a peer on every leg and a lock on every
// other session (learned or past its learning window).
func sessionLegs(n int) []Leg {
	legs := make([]Leg, 0, 4*n)
	for i := range n {
		addr, port := i/pairs, uint16(2000+2*(i%pairs))
		ga := netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + addr)})
		gb := netip.AddrFrom4([4]byte{10, 0, 0, byte(1 + addr)})
		pa := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
		pb := netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)})
		for k := range 4 {
			gate, src, peer := ga, gb, pb
			if k >= 2 {
				gate, src, peer = gb, ga, pa
			}
			p := port + uint16(k%2)
			l := Leg{Mark: Mark(uint32(4*(i+1) + k)), Gate: netip.AddrPortFrom(gate, p),
				Source: netip.AddrPortFrom(src, p), Peer: netip.AddrPortFrom(peer, 4000+uint16(k%2))}
			if i%2 == 0 {
				l.Lock = netip.AddrPortFrom(peer, 4000+uint16(k%2))
			}
			legs = append(legs, l)
		}
	}
	return legs
}

// pairs is the number of port pairs per gate address in sessionLegs.
const pairs = 30000

// sessionGates are the gates of sessionLegs(n): sets are sized for their
// ports, and the kernel refuses elements beyond a set's size.
func sessionGates(n int) []Gate {
	var gates []Gate
	for addr := range (n + pairs - 1) / pairs {
		for _, a := range [][4]byte{{192, 0, 2, byte(1 + addr)}, {10, 0, 0, byte(1 + addr)}} {
			gates = append(gates, Gate{Addr: netip.AddrFrom4(a), First: 2000, Last: 2000 + 2*pairs - 1, Zone: ZoneA})
		}
	}
	return gates
}

// installLegs adds legs in batches of a few thousand, the way a repair does.
func installLegs(tb testing.TB, d Dataplane, legs []Leg) {
	tb.Helper()
	ctx := context.Background()
	for len(legs) > 0 {
		n := min(len(legs), 2048)
		if _, err := d.Apply(ctx, Batch{Add: legs[:n]}); err != nil {
			tb.Fatal(err)
		}
		legs = legs[n:]
	}
}

// BenchmarkKernelLegs measures listing the table back (what a restart
// does before it repairs) with 25k, 50k and 100k sessions installed. Run it
// with -benchtime=1x: one listing of 100k sessions takes seconds.
func BenchmarkKernelLegs(b *testing.B) {
	if testing.Short() {
		b.Skip("short")
	}
	for _, n := range []int{25000, 50000, 100000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			_, fd := kernelNSB(b)
			ctx := context.Background()
			d := openKernel(b, fd)
			if err := d.Setup(ctx, sessionGates(n)); err != nil {
				b.Fatal(err)
			}
			legs := sessionLegs(n)
			start := time.Now()
			installLegs(b, d, legs)
			b.Logf("installed %d legs in %s", len(legs), time.Since(start).Round(time.Millisecond))
			for b.Loop() {
				got, err := d.Legs(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != len(legs) {
					b.Fatalf("listed %d legs, want %d", len(got), len(legs))
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/listing")
		})
	}
}

// BenchmarkKernelElementsPresent measures what the table watch adds after
// a foreign commit: looking up the elements of 64 sessions (the daemon's
// sample) in a table of 100k.
func BenchmarkKernelElementsPresent(b *testing.B) {
	if testing.Short() {
		b.Skip("short")
	}
	const n = 100000
	_, fd := kernelNSB(b)
	ctx := context.Background()
	d := openKernel(b, fd).(*nftDataplane)
	if err := d.Setup(ctx, sessionGates(n)); err != nil {
		b.Fatal(err)
	}
	legs := sessionLegs(n)
	installLegs(b, d, legs)
	sample := legs[len(legs)/2 : len(legs)/2+64*4]
	for b.Loop() {
		if err := d.ElementsPresent(ctx, sample); err != nil {
			b.Fatal(err)
		}
	}
}
