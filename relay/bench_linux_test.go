//go:build linux && integration

package relay

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
)

// BenchmarkKernelApply measures the kernel edge alone: one session's four
// legs installed in one transaction, then removed (with the conntrack flush).
func BenchmarkKernelApply(b *testing.B) {
	if testing.Short() {
		b.Skip("short")
	}
	_, fd := kernelNSB(b)
	ctx := context.Background()
	d := openKernel(b, fd)
	ga, gb := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.0.0.1")
	for _, n := range []int{1, 4} { // one leg, and a session's four: a transaction's fixed and per-leg cost
		legs := make([]Leg, n)
		for k := range legs {
			p := uint16(30000 + k)
			legs[k] = Leg{Mark: Mark(uint32(4 + k)), Gate: netip.AddrPortFrom(ga, p), Source: netip.AddrPortFrom(gb, p), Peer: ap("10.0.0.10:5000")}
		}
		b.Run(fmt.Sprintf("install/legs=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := d.Apply(ctx, Batch{Add: legs}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if _, err := d.Apply(ctx, Batch{Remove: legs}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
		b.Run(fmt.Sprintf("remove/legs=%d", n), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				if _, err := d.Apply(ctx, Batch{Add: legs}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := d.Apply(ctx, Batch{Remove: legs}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
