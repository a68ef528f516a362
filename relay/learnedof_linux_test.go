//go:build linux && integration

package relay

import (
	"context"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Learned with marks looks each one up, in either family's learned map:
// what the kernel learned (here added as its rule would), what Apply put,
// and nothing for a mark that learned nothing; the listing agrees. A
// learning leg removed and added back unchanged loses what it learned.
func TestKernelLearnedOfMarks(t *testing.T) {
	ns, fd := kernelNS(t)
	ctx := context.Background()
	d := openKernel(t, fd)
	learning := Leg{Mark: Mark(4), Gate: ap("192.0.2.1:30000"), Peer: ap("10.0.0.10:5000"), Source: ap("10.0.0.1:30000"),
		Allowed: Allow(netip.MustParseAddr("198.51.100.7")), Guard: true, Learn: true}
	learned := Leg{Mark: Mark(8), Gate: ap("[2001:db8:a::1]:30002"), Source: ap("[2001:db8:b::1]:30002"),
		Lock: ap("[2001:db8:a::10]:7000"), Learned: ap("[2001:db8:a::10]:7000")}
	unlearned := Leg{Mark: Mark(12), Gate: ap("192.0.2.1:30004"), Peer: ap("10.0.0.10:5004"), Source: ap("10.0.0.1:30004"), Learn: true}
	if _, err := d.Apply(ctx, Batch{Add: []Leg{learning, learned, unlearned}}); err != nil {
		t.Fatal(err)
	}
	nft(t, ns, "add", "element", "inet", TableName, "learned4", "{ 0x52000004 : 198.51.100.7 . 4321 }")
	want := map[uint32]netip.AddrPort{Mark(4): ap("198.51.100.7:4321"), Mark(8): ap("[2001:db8:a::10]:7000")}
	got, err := d.Learned(ctx, Mark(4), Mark(8), Mark(12))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, legCmp); diff != "" {
		t.Errorf("looked up (-want +got):\n%s", diff)
	}
	all, err := d.Learned(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, all, legCmp); diff != "" {
		t.Errorf("listed (-want +got):\n%s", diff)
	}
	if got, err := d.Learned(ctx, Mark(12)); err != nil || len(got) != 0 {
		t.Errorf("a mark that learned nothing: %v, %v; want none", got, err)
	}
	// A learning leg put back as it was (its side re-pointed) forgets
	// what the kernel learned for it.
	if _, err := d.Apply(ctx, Batch{Remove: []Leg{learning}, Add: []Leg{learning}}); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Learned(ctx, Mark(4)); err != nil || len(got) != 0 {
		t.Errorf("after the leg was put back: %v, %v; want nothing learned", got, err)
	}
}

// BenchmarkKernelLearnedOfMark measures what a new-flow event on a
// learning leg adds: looking up the one learned source of its mark (an
// IPv4 leg: one request; an IPv6 one looks in learned4 first).
func BenchmarkKernelLearnedOfMark(b *testing.B) {
	_, fd := kernelNSB(b)
	ctx := context.Background()
	d := openKernel(b, fd)
	learned := Leg{Mark: Mark(4), Gate: ap("192.0.2.1:30000"), Peer: ap("10.0.0.10:5000"), Source: ap("10.0.0.1:30000"),
		Lock: ap("198.51.100.7:4000"), Learned: ap("198.51.100.7:4000")}
	if _, err := d.Apply(ctx, Batch{Add: []Leg{learned}}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if got, err := d.Learned(ctx, Mark(4)); err != nil || len(got) != 1 {
			b.Fatalf("%v, %v", got, err)
		}
	}
}
