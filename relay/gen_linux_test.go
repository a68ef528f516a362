//go:build linux && integration

package relay

import (
	"context"
	"testing"
)

// The generation moves by one per transaction of the dataplane, which it
// recognises as its own; a commit by anyone else (the nft CLI here) breaks
// that, whatever table it touches.
func TestKernelGenerationTellsOwnCommitsFromForeignOnes(t *testing.T) {
	ns, fd := kernelNS(t)
	ctx := context.Background()
	d, err := Open(Options{NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	first, err := d.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.Own || first.Boot == "" || first.NetNS == 0 {
		t.Fatalf("first reading %+v: want an identified, not own generation", first)
	}
	if err := d.Setup(ctx, testGates()); err != nil {
		t.Fatal(err)
	}
	legs := []Leg{{Mark: Mark(4), Gate: ap("192.0.2.1:30000"), Peer: ap("10.0.0.10:5000"), Source: ap("10.0.0.1:30000")}}
	if _, err := d.Apply(ctx, Batch{Add: legs}); err != nil {
		t.Fatal(err)
	}
	own, err := d.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !own.Own || own.ID != first.ID+2 || own.Boot != first.Boot || own.NetNS != first.NetNS {
		t.Fatalf("after Setup and one batch: %+v, want own and id %d", own, first.ID+2)
	}
	if again, _ := d.Generation(ctx); !again.Own || !again.Same(own) {
		t.Errorf("nothing committed: %+v, want own and the same as %+v", again, own)
	}
	// A failed batch leaves the generation unknown to the dataplane.
	if _, err := d.Apply(ctx, Batch{Remove: []Leg{{Mark: Mark(99), Gate: ap("192.0.2.1:30098")}}}); err == nil {
		t.Fatal("removing a missing leg succeeded")
	}
	if g, _ := d.Generation(ctx); g.Own {
		t.Errorf("after a failed batch: %+v, want not own", g)
	}
	nft(t, ns, "add", "table", "ip", "someone-else")
	if _, err := d.Apply(ctx, Batch{Remove: legs}); err != nil {
		t.Fatal(err)
	}
	if g, _ := d.Generation(ctx); g.Own {
		t.Errorf("after a foreign commit: %+v, want not own", g)
	}
	// Another namespace has another identity.
	_, fd2 := kernelNS(t)
	d2, err := Open(Options{NetNS: fd2})
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if g2, _ := d2.Generation(ctx); g2.NetNS == own.NetNS || g2.Same(own) {
		t.Errorf("another namespace: %+v, same identity as %+v", g2, own)
	}
}

// BenchmarkKernelGeneration is the cost of one NFT_MSG_GETGEN round trip,
// what reading the generation after each transaction adds to it.
func BenchmarkKernelGeneration(b *testing.B) {
	_, fd := kernelNSB(b)
	d, err := Open(Options{NetNS: fd})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	for b.Loop() {
		if _, err := d.Generation(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
