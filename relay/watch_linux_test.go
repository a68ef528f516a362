//go:build linux && integration

package relay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// TableIntact is what the table watch looks at after a foreign commit: it
// must hold while only another table changes and fail once the relay's
// table is flushed away or a chain's rules are changed.
func TestKernelTableIntact(t *testing.T) {
	ns, fd := kernelNS(t)
	d := openKernel(t, fd).(*nftDataplane)
	ctx := context.Background()
	if err := d.TableIntact(ctx); err != nil {
		t.Fatalf("after Setup: %v", err)
	}
	nft(t, ns, "add", "table", "ip", "other")
	if err := d.TableIntact(ctx); err != nil {
		t.Fatalf("after another table was added: %v", err)
	}
	nft(t, ns, "add", "rule", "inet", TableName, "post", "counter")
	if err := d.TableIntact(ctx); err == nil {
		t.Error("after a rule was added to chain post: want an error")
	}
	nft(t, ns, "flush", "ruleset")
	if err := d.TableIntact(ctx); err == nil {
		t.Error("after flush ruleset: want an error")
	}
	if err := d.Setup(ctx, testGates()); err != nil {
		t.Fatal(err)
	}
	if err := d.TableIntact(ctx); err != nil {
		t.Errorf("after Setup again: %v", err)
	}
}

// ElementsPresent is what the table watch looks at after a foreign commit
// that left the rules alone: it must hold while the elements are there,
// and fail with ErrElementsMissing once any set its legs use is flushed
// (`nft flush map`, `nft flush set`) or its looked-up element deleted.
func TestKernelElementsPresent(t *testing.T) {
	ns, fd := kernelNS(t)
	d := openKernel(t, fd).(*nftDataplane)
	ctx := context.Background()
	learning := Leg{Mark: Mark(4), Gate: ap("192.0.2.1:30000"), Peer: ap("10.0.0.10:5000"), Source: ap("10.0.0.1:30000"),
		Allowed: Allow(netip.MustParseAddr("198.51.100.7")), Guard: true, Learn: true}
	locked := Leg{Mark: Mark(8), Gate: ap("[2001:db8:a::1]:30002"), Peer: ap("[2001:db8:b::10]:5002"),
		Source: ap("[2001:db8:a::1]:30002"), Lock: ap("[2001:db8:b::10]:5002")}
	legs := []Leg{learning, locked}
	if _, err := d.Apply(ctx, Batch{Add: legs}); err != nil {
		t.Fatal(err)
	}
	if err := d.ElementsPresent(ctx, legs); err != nil {
		t.Fatalf("with every element in place: %v", err)
	}
	if err := d.ElementsPresent(ctx, nil); err != nil {
		t.Fatalf("with no legs: %v", err)
	}
	for _, set := range []string{"leg4", "dnat4", "snat4", "guard", "learn", "learnfrom4", "lock", "allow6", "dnat6"} {
		t.Run(set, func(t *testing.T) {
			verb := "map"
			if !strings.HasPrefix(set, "leg") && !strings.HasPrefix(set, "dnat") && !strings.HasPrefix(set, "snat") {
				verb = "set"
			}
			nft(t, ns, "flush", verb, "inet", TableName, set)
			err := d.ElementsPresent(ctx, legs)
			if !errors.Is(err, ErrElementsMissing) || !strings.Contains(err.Error(), set) {
				t.Errorf("after flush %s %s: %v, want %v naming it", verb, set, err, ErrElementsMissing)
			}
			// Back to the legs for the next set.
			nft(t, ns, "flush", "table", "inet", TableName)
			if err := d.Setup(ctx, testGates()); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Apply(ctx, Batch{Add: legs}); err != nil {
				t.Fatal(err)
			}
			if err := d.ElementsPresent(ctx, legs); err != nil {
				t.Fatalf("after putting the legs back: %v", err)
			}
		})
	}
	nft(t, ns, "delete", "element", "inet", TableName, "lock", "{", fmt.Sprint(uint32(Mark(8))), "}")
	if err := d.ElementsPresent(ctx, legs); !errors.Is(err, ErrElementsMissing) {
		t.Errorf("after one element was deleted: %v, want %v", err, ErrElementsMissing)
	}
}
