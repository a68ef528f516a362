package lrkproxy

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Requests as Kamailio 5.6.3's lrkproxy module writes them (gencookie is
// "<pid>_<seq> "; S ends every field with a space). The S is the answer of
// a call from 192.0.2.10:6000 (flags "ei" on the INVITE, "ie" on the 200
// OK) to 10.0.0.10:6000 through internal 10.0.0.1 and external 192.0.2.1.
const (
	modulePing   = "4711_0 P"
	moduleConfig = "4711_1 G"
	moduleSet    = "4711_2 S 192.0.2.10 10.0.0.1 192.0.2.1 10.0.0.10 6000 30000 30002 6000 60 1-4711@192.0.2.10 "
	// Kamailio 5.7's D for a call cancelled before the answer: the answer's
	// fields are empty.
	moduleDelete = "4711_3 D 192.0.2.10 10.0.0.1  10.0.0.10 6000 30000  6000 60 1-4711@192.0.2.10 "
)

var a = netip.MustParseAddr

func TestParseReadsTheModulesRequests(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		in   string
		want Request
	}{
		{"a ping is a cookie and P", modulePing, Request{Cookie: "4711_0", Command: 'P', Body: "P"}},
		{"a config request is a cookie and G", moduleConfig, Request{Cookie: "4711_1", Command: 'G', Body: "G"}},
		{"S carries ten fields, each ending in a space", moduleSet, Request{Cookie: "4711_2", Command: 'S',
			Body: moduleSet[len("4711_2 "):],
			Mapping: Mapping{Src: a("192.0.2.10"), Dst: a("10.0.0.1"), SNAT: a("192.0.2.1"), DNAT: a("10.0.0.10"),
				SrcPort: 6000, DstPort: 30000, SNATPort: 30002, DNATPort: 6000, Timeout: 60, CallID: "1-4711@192.0.2.10"}}},
		{"D may leave fields empty", moduleDelete, Request{Cookie: "4711_3", Command: 'D',
			Body: moduleDelete[len("4711_3 "):],
			Mapping: Mapping{Src: a("192.0.2.10"), Dst: a("10.0.0.1"), DNAT: a("10.0.0.10"),
				SrcPort: 6000, DstPort: 30000, DNATPort: 6000, Timeout: 60, CallID: "1-4711@192.0.2.10"}}},
		{"S without the trailing space", "c S 1.2.3.4 10.0.0.1 192.0.2.1 5.6.7.8 1 2 3 4 60 x", Request{Cookie: "c", Command: 'S',
			Body: "S 1.2.3.4 10.0.0.1 192.0.2.1 5.6.7.8 1 2 3 4 60 x",
			Mapping: Mapping{Src: a("1.2.3.4"), Dst: a("10.0.0.1"), SNAT: a("192.0.2.1"), DNAT: a("5.6.7.8"),
				SrcPort: 1, DstPort: 2, SNATPort: 3, DNATPort: 4, Timeout: 60, CallID: "x"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(&c.want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestParseRejectsMalformedRequests(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, in string
		want     error
	}{
		{"no cookie", "P", errNoCookie},
		{"an empty cookie", " P", errNoCookie},
		{"a cookie with control characters", "a\tb P", errSyntax},
		{"no command", "c ", errUnknownCommand},
		{"an unknown command", "c X", errUnknownCommand},
		{"a command word longer than a letter", "c PING", errUnknownCommand},
		{"S with nine fields", "c S 1.2.3.4 10.0.0.1 192.0.2.1 5.6.7.8 1 2 3 4 60", errFields},
		{"S with eleven fields", "c S 1.2.3.4 10.0.0.1 192.0.2.1 5.6.7.8 1 2 3 4 60 x y ", errFields},
		{"S with a bad address", "c S 1.2.3 10.0.0.1 192.0.2.1 5.6.7.8 1 2 3 4 60 x ", errSyntax},
		{"S with a scoped address", "c S fe80::1%eth0 10.0.0.1 192.0.2.1 5.6.7.8 1 2 3 4 60 x ", errSyntax},
		{"S with a port above 65535", "c S 1.2.3.4 10.0.0.1 192.0.2.1 5.6.7.8 1 70000 3 4 60 x ", errSyntax},
		{"S with a negative timeout", "c S 1.2.3.4 10.0.0.1 192.0.2.1 5.6.7.8 1 2 3 4 -1 x ", errSyntax},
		{"S without a call-id", "c S 1.2.3.4 10.0.0.1 192.0.2.1 5.6.7.8 1 2 3 4 60  ", errNoCallID},
		{"D with a control character in the call-id", "c D         60 x\x01 ", errSyntax},
		{"a datagram too long", "c P" + string(make([]byte, maxDatagram)), errTooLong},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse([]byte(c.in)); !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
}

func TestFormatWritesWhatParseReads(t *testing.T) {
	t.Parallel()
	r, err := Parse([]byte(moduleSet))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Mapping.Format('S'); got != r.Body {
		t.Errorf("Format\n%q\nwant the module's body\n%q", got, r.Body)
	}
	d, _ := Parse([]byte(moduleDelete))
	if got := d.Mapping.Format('D'); got != d.Body {
		t.Errorf("Format of a D with empty fields\n%q\nwant\n%q", got, d.Body)
	}
}

func TestNodeConfigIsTheModulesStruct(t *testing.T) {
	t.Parallel()
	c := NodeConfig{StartPort: 30000, EndPort: 30996, CurrentPort: 30004, InternalIP: a("10.0.0.1"), ExternalIP: a("192.0.2.1")}
	b, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 52 {
		t.Fatalf("%d bytes, want sizeof(struct lrkp_node_conf) = 52", len(b))
	}
	if string(b[12:21]) != "10.0.0.1\x00" || string(b[32:42]) != "192.0.2.1\x00" {
		t.Errorf("address fields %q %q, want NUL-terminated strings at offsets 12 and 32", b[12:32], b[32:52])
	}
	var back NodeConfig
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if back != c {
		t.Errorf("round trip %+v, want %+v", back, c)
	}
	long := c
	long.InternalIP = a("2001:db8:aaaa:bbbb:cccc::1")
	if _, err := long.MarshalBinary(); err == nil {
		t.Error("an address of 20 bytes or more was encoded into char[20]")
	}
}

// FuzzParse: no panic; a parsed S or D formats back to a body that parses
// to the same mapping.
func FuzzParse(f *testing.F) {
	for _, s := range []string{modulePing, moduleConfig, moduleSet, moduleDelete,
		"c S 1.2.3.4 10.0.0.1 192.0.2.1 5.6.7.8 1 2 3 4 60 x", "c D         60 x ", "x E"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil || (r.Command != CmdSet && r.Command != CmdDelete) {
			return
		}
		again, err := Parse([]byte(r.Cookie + " " + r.Mapping.Format(r.Command)))
		if err != nil {
			t.Fatalf("re-parsing %q: %v", r.Mapping.Format(r.Command), err)
		}
		if again.Mapping != r.Mapping {
			t.Fatalf("round trip %+v, want %+v", again.Mapping, r.Mapping)
		}
	})
}
