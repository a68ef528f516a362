package relay

import (
	"bytes"
	"net/netip"
	"testing"
)

// A slab's byte strings are those of markBytes and endpointBytes, and
// appending to one never runs into the next.
func TestSlabCutsTheElementEncodings(t *testing.T) {
	t.Parallel()
	b := make(slab, 0, 8) // too small: it grows, and earlier cuts stay
	var cuts [][]byte
	var want [][]byte
	for _, ap := range []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:30000"), netip.MustParseAddrPort("[2001:db8::1]:5004"), netip.MustParseAddrPort("[::ffff:10.0.0.1]:1")} {
		cuts = append(cuts, b.mark(0x52000004), b.endpoint(ap), b.markEndpoint(7, ap), b.markAddr(7, ap.Addr()))
		want = append(want, markBytes(0x52000004), endpointBytes(ap),
			append(markBytes(7), endpointBytes(ap)...), append(markBytes(7), ap.Addr().Unmap().AsSlice()...))
	}
	for i := range cuts {
		if !bytes.Equal(cuts[i], want[i]) {
			t.Errorf("cut %d = %x, want %x", i, cuts[i], want[i])
		}
		_ = append(cuts[i], 0xff) // must not change the next cut
	}
	for i := range cuts {
		if !bytes.Equal(cuts[i], want[i]) {
			t.Errorf("after appending to the cuts, cut %d = %x, want %x", i, cuts[i], want[i])
		}
	}
}
