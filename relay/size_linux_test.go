//go:build linux && integration

package relay

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A set holds at most its size: one element more fails the batch with the
// kernel's ENFILE, named for what it is, and changes nothing.
func TestKernelSetBeyondItsSizeFailsClearly(t *testing.T) {
	_, fd := kernelNS(t)
	ctx := context.Background()
	d, err := Open(Options{NetNS: fd})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	gates := []Gate{{Addr: netip.MustParseAddr("192.0.2.1"), First: 30000, Last: 30009, Zone: ZoneA}}
	if err := d.Setup(ctx, gates); err != nil {
		t.Fatal(err)
	}
	legs := make([]Leg, minSetSize+1)
	for i := range legs {
		port := uint16(20000 + i)
		legs[i] = Leg{Mark: Mark(uint32(4 + i)), Gate: netip.AddrPortFrom(gates[0].Addr, port),
			Source: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port)}
	}
	if _, err := d.Apply(ctx, Batch{Add: legs[:minSetSize]}); err != nil {
		t.Fatalf("filling the set to its size: %v", err)
	}
	_, err = d.Apply(ctx, Batch{Add: legs[minSetSize:]})
	if !errors.Is(err, unix.ENFILE) || !strings.Contains(err.Error(), "a set is full") {
		t.Fatalf("one leg beyond the size: %v, want ENFILE named a full set", err)
	}
	if got, _ := d.Legs(ctx); len(got) != minSetSize {
		t.Errorf("%d legs after the refused batch, want %d", len(got), minSetSize)
	}
}
