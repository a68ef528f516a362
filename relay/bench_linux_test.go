//go:build linux && integration

package relay

import (
	"context"
	"fmt"
	"net/netip"
	"os"
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

// BenchmarkKernelApplyCall measures the kernel edge of one call as the
// switchboard makes it: an offer installs four learning, guarded legs
// (only the answering side's have a peer), the answer adds them back with
// peers and the other side's learning sources, and a delete removes them.
func BenchmarkKernelApplyCall(b *testing.B) {
	if testing.Short() {
		b.Skip("short")
	}
	_, fd := kernelNSB(b)
	ctx := context.Background()
	d := openKernel(b, fd)
	offer, answer := callLegs()
	steps := []struct {
		name string
		b    Batch
	}{
		{"offer", Batch{Add: offer}},
		{"answer", Batch{Remove: offer, Add: answer}},
		{"delete", Batch{Remove: answer}},
	}
	for i, s := range steps {
		b.Run(s.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				for _, before := range steps[:i] {
					if _, err := d.Apply(ctx, before.b); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if _, err := d.Apply(ctx, s.b); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				for _, after := range steps[i+1:] {
					if _, err := d.Apply(ctx, after.b); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
		})
	}
}

// callLegs are a call's legs after its offer and after its answer.
func callLegs() (offer, answer []Leg) {
	ga, gb := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("10.0.0.1")
	caller, callee := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("10.0.0.10")
	for k := range 4 {
		p := uint16(30000 + k%2)
		l := Leg{Mark: Mark(uint32(4 + k)), Gate: netip.AddrPortFrom(ga, p), Source: netip.AddrPortFrom(gb, p),
			Guard: true, Learn: os.Getenv("NOLEARN") == "", Allowed: Allow(caller)}
		peer := netip.AddrPortFrom(callee, 5000+uint16(k%2))
		if k >= 2 {
			l.Gate, l.Source, l.Allowed = netip.AddrPortFrom(gb, p), netip.AddrPortFrom(ga, p), Allow(callee)
			peer = netip.AddrPortFrom(caller, 4000+uint16(k%2))
		}
		a := l
		a.Peer = peer
		if k >= 2 {
			l.Peer, l.Allowed = peer, [MaxAllowed]netip.Addr{}
		}
		offer, answer = append(offer, l), append(answer, a)
	}
	return offer, answer
}
