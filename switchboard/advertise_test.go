package switchboard

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// advertised is base with gate-a behind a 1:1 NAT: local 192.0.2.1, public
// 203.0.113.7.
var advertised = edit(`"192.0.2.1", ports = "30000-30999" }`, `"192.0.2.1", ports = "30000-30999", advertise = "203.0.113.7" }`)

func TestAdvertiseIsWrittenForItsGateOnly(t *testing.T) {
	t.Parallel()
	c, err := ParseConfig([]byte(advertised))
	if err != nil {
		t.Fatal(err)
	}
	sb := c.Switchboard("edge")
	for _, tc := range []struct{ gate, want string }{
		{"192.0.2.1:30000", "203.0.113.7:30000"},
		{"10.0.0.1:30002", "10.0.0.1:30002"},
		{"192.0.2.1:31000", "192.0.2.1:31000"}, // outside the gate's range: not the gate's
	} {
		if got := sb.Advertised(ap(tc.gate)); got != ap(tc.want) {
			t.Errorf("Advertised(%s) = %s, want %s", tc.gate, got, tc.want)
		}
	}
	if got := (*Switchboard)(nil).Advertised(ap("192.0.2.1:30000")); got != ap("192.0.2.1:30000") {
		t.Errorf("Advertised of no switchboard = %s, want the gate itself", got)
	}
	if got, want := sb.A.Public(), netip.MustParseAddr("203.0.113.7"); got != want {
		t.Errorf("gate-a Public = %s, want %s", got, want)
	}
	if got, want := sb.B.Public(), sb.B.Addr; got != want {
		t.Errorf("gate-b Public = %s, want its address %s", got, want)
	}
}

func TestBadAdvertiseSaysWhereAndWhat(t *testing.T) {
	t.Parallel()
	set := func(v string) string {
		return edit(`"10.0.0.1", ports = "30000-30999" }`, `"10.0.0.1", ports = "30000-30999", advertise = `+v+` }`)
	}
	for _, tc := range []struct{ name, toml, want string }{
		{"an advertise that is no address", set(`"public"`), `switchboard "edge": gate-b: invalid advertise address "public"`},
		{"an advertise of another family", set(`"2001:db8::7"`), `switchboard "edge": gate-b: advertise address "2001:db8::7" and address 10.0.0.1 differ in family`},
		{"an unspecified advertise", set(`"0.0.0.0"`), `switchboard "edge": gate-b: advertise address "0.0.0.0" cannot be a gate (unspecified or multicast)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfig([]byte(tc.toml))
			if err == nil {
				t.Fatal("accepted")
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}
