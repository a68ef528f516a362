package rtpproxy

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// kamailioCommands are command lines of Kamailio 5.6's rtpproxy module:
// first as it sent them in integration/rtpproxy_test.go (handshake; a call
// with offer, answer, hold and unhold re-INVITEs and BYE; a cancelled
// call), then built as src/modules/rtpproxy/rtpproxy.c builds them for
// the callee's re-INVITE, hold with c=0.0.0.0 and a timeout socket, IPv6,
// a second stream with ptime, $rtpstat (Q), and Via-branch call-ids.
var kamailioCommands = []string{
	"V",
	"VF 20050322",
	"VF 20071116",
	"VF 20081102",
	"UEIc8,101 1-16960@192.0.2.10 192.0.2.10 6000 16960SIPpTag001;1",
	"LIEc8,101 1-16960@192.0.2.10 10.0.0.10 6000 16960SIPpTag001;1 16959SIPpTag011;1",
	"UEIc8,101 1-16960@192.0.2.10 192.0.2.10 6000 16960SIPpTag001;1 16959SIPpTag011;1",
	"D 1-16960@192.0.2.10 16960SIPpTag001 16959SIPpTag011",
	"UEIc8 1-16760@192.0.2.10 192.0.2.10 6000 16760SIPpTag001;1",
	"D 1-16760@192.0.2.10 16760SIPpTag001",
	"UIEc8,101 1-16960@192.0.2.10 10.0.0.10 6000 16959SIPpTag011;1 16960SIPpTag001;1",
	"UEIc0,8,101 1-16960@192.0.2.10 0.0.0.0 6000 16960SIPpTag001;1 16959SIPpTag011;1 unix:/run/kamailio/rtpproxy-timeout.sock",
	"UEI6c8 1-16960@2001:db8:a::10 2001:db8:a::10 6000 16960SIPpTag001;1",
	"UEIAz20c18 1-16960@192.0.2.10 192.0.2.10 6002 16960SIPpTag001;2",
	"Q 1-16960@192.0.2.10 16960SIPpTag001;1 16959SIPpTag011",
	"D 1-16960@192.0.2.10;z9hG4bK-1 16960SIPpTag001",
	"I",
}

func TestParseCommandDecodesWhatKamailioSends(t *testing.T) {
	t.Parallel()
	caller := netip.MustParseAddrPort("192.0.2.10:6000")
	for _, tc := range []struct {
		name, line string
		want       command
	}{
		{"an offer carries the bridge letters, codecs and the creator's tag with its medianum",
			"UEIc8,101 1-4242@192.0.2.10 192.0.2.10 6000 4242SIPpTag001;1",
			command{op: opUpdate, mods: modifiers{bridge: "EI", codecs: "8,101"}, callID: "1-4242@192.0.2.10",
				media: caller, from: "4242SIPpTag001;1"}},
		{"an answer carries both tags",
			"LIE 1-4242@192.0.2.10 10.0.0.10 6000 4242SIPpTag001;1 4243SIPpTag011;1",
			command{op: opLookup, mods: modifiers{bridge: "IE"}, callID: "1-4242@192.0.2.10",
				media: netip.MustParseAddrPort("10.0.0.10:6000"), from: "4242SIPpTag001;1", to: "4243SIPpTag011;1"}},
		{"Kamailio's timeout socket follows the to-tag",
			"Uei 1 192.0.2.10 6000 f;1 t;1 unix:/run/k.sock",
			command{op: opUpdate, mods: modifiers{bridge: "EI"}, callID: "1", media: caller, from: "f;1", to: "t;1",
				notify: []string{"unix:/run/k.sock"}}},
		{"rtpproxy's own notification socket and tag may follow the from-tag",
			"U 1 192.0.2.10 6000 f;1 udp:127.0.0.1:9 tag",
			command{op: opUpdate, callID: "1", media: caller, from: "f;1", notify: []string{"udp:127.0.0.1:9", "tag"}}},
		{"unused modifiers are kept as sent and IPv6 is flagged",
			"U6SwZ20l[2001:db8::1]r10.0.0.1N 1 2001:db8::10 0 f",
			command{op: opUpdate, mods: modifiers{ipv6: true, other: "SwZ20l[2001:db8::1]r10.0.0.1N"}, callID: "1",
				media: netip.MustParseAddrPort("[2001:db8::10]:0"), from: "f"}},
		{"a feature probe names its date", "VF 20081102", command{op: opFeature, feature: "20081102"}},
		{"a query may list counters", "Qv 1 f;1 t ttl npkts_ina",
			command{op: opQuery, flags: "v", callID: "1", from: "f;1", to: "t", stats: []string{"ttl", "npkts_ina"}}},
		{"tabs and CRLF separate words too", "D\t1  f\r\n", command{op: opDelete, callID: "1", from: "f"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCommand(tc.line)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got, commandCmp); d != "" {
				t.Errorf("parseCommand(%q) (-want +got):\n%s", tc.line, d)
			}
		})
	}
}

func TestParseCommandRejectsWithRtpproxysCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, line string
		code       int
	}{
		{"an empty line is a syntax error", "  ", codeSyntax},
		{"a NUL byte is a syntax error", "V\x00", codeSyntax},
		{"an unknown letter is an unknown command", "X", codeUnknownCommand},
		{"playback is not supported", "P 1 file session f", codeUnknownCommand},
		{"U needs a tag", "U 1 192.0.2.10 6000", codeArgs},
		{"L takes at most two tags", "L 1 192.0.2.10 6000 f t x", codeArgs},
		{"V takes no modifiers", "Vx", codeModifiers},
		{"VF needs a date", "VF", codeArgs},
		{"a third bridge letter is refused", "UEIE 1 192.0.2.10 6000 f", codeExternal},
		{"c needs payload types", "Uc 1 192.0.2.10 6000 f", codeCodecs},
		{"z needs a ptime", "Uz0 1 192.0.2.10 6000 f", codePtime},
		{"l needs an address", "Ulx 1 192.0.2.10 6000 f", codeLocalAddr},
		{"r needs an address", "Ur[::1 1 192.0.2.10 6000 f", codeRemoteAddr},
		{"an unknown modifier is refused", "U% 1 192.0.2.10 6000 f", codeUnknownModifier},
		{"a host name is no address", "U 1 example.org 6000 f", codeAddress},
		{"a port above 65535 is refused", "U 1 192.0.2.10 70000 f", codeAddress},
		{"an IPv6 address needs modifier 6", "U 1 2001:db8::1 6000 f", codeAddress},
		{"modifier 6 needs an IPv6 address", "U6 1 192.0.2.10 6000 f", codeAddress},
		{"D knows only w", "Dx 1 f", codeDeleteModifier},
		{"Q knows only v", "Qx 1 f", codeQueryModifier},
		{"I knows only b and l", "Ix", codeInfoModifier},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseCommand(tc.line)
			var pe *protoError
			if !errors.As(err, &pe) || pe.code != tc.code {
				t.Fatalf("parseCommand(%q) = %v, want code %d", tc.line, err, tc.code)
			}
		})
	}
}

// commandCmp compares commands.
var commandCmp = cmp.Options{cmp.AllowUnexported(command{}, modifiers{}),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })}

// FuzzParseCommand: no input panics, and what parses encodes to a line
// that parses to the same command.
func FuzzParseCommand(f *testing.F) {
	for _, l := range kamailioCommands {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := parseCommand(line)
		if err != nil {
			if errorReply(err)[0] != 'E' {
				t.Fatalf("error reply %q", errorReply(err))
			}
			return
		}
		again, err := parseCommand(c.String())
		if err != nil {
			t.Fatalf("%q parsed, its encoding %q does not: %v", line, c.String(), err)
		}
		if d := cmp.Diff(c, again, commandCmp); d != "" {
			t.Fatalf("%q → %q round trip (-first +second):\n%s", line, c.String(), d)
		}
	})
}
