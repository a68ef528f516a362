package mediaproxy

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Requests as Kamailio 5.6.3's mediaproxy module writes them
// (use_media_proxy: dialog_id empty, hence absent; to_tag empty in the
// INVITE and in provisional replies).
const (
	moduleInvite = "update\r\ntype: request\r\ndialog_id: \r\ncall_id: 1-4711@192.0.2.10\r\ncseq: 1\r\n" +
		"from_uri: alice@192.0.2.10:5060\r\nto_uri: bob@10.0.0.10:5060\r\nfrom_tag: 4711SIPpTag001\r\nto_tag: \r\n" +
		"user_agent: unknown agent\r\nsignaling_ip: 192.0.2.10\r\nmedia_relay: \r\n" +
		"media: audio:192.0.2.10:6000:sendrecv:ice=no\r\n\r\n"
	moduleOK = "update\r\ntype: reply\r\ndialog_id: \r\ncall_id: 1-4711@192.0.2.10\r\ncseq: 1\r\n" +
		"from_uri: alice@192.0.2.10:5060\r\nto_uri: bob@10.0.0.10:5060\r\nfrom_tag: 4711SIPpTag001\r\nto_tag: 4712SIPpTag011\r\n" +
		"user_agent: unknown agent\r\nsignaling_ip: 10.0.0.10\r\nmedia_relay: \r\n" +
		"media: audio:10.0.0.10:6000:sendrecv:ice=no\r\n\r\n"
	// engage_media_proxy: the dialog module's id, two streams.
	moduleEngaged = "update\r\ntype: request\r\ndialog_id: 3:1887\r\ncall_id: 2-4711@192.0.2.10\r\ncseq: 20\r\n" +
		"from_uri: alice@example.com\r\nto_uri: bob@example.com\r\nfrom_tag: a1\r\nto_tag: \r\n" +
		"user_agent: SIPp/Linux\r\nsignaling_ip: 192.0.2.10\r\nmedia_relay: \r\n" +
		"media: audio:192.0.2.10:6000:sendrecv:ice=no,video:192.0.2.10:6002:sendonly:ice=yes\r\n\r\n"
	moduleRemove = "remove\r\ncall_id: 1-4711@192.0.2.10\r\nfrom_tag: 4712SIPpTag011\r\nto_tag: 4711SIPpTag001\r\n\r\n"
)

var addr = netip.MustParseAddr

func TestParseReadsTheModulesRequests(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		in   string
		want Request
	}{
		{"use_media_proxy on an INVITE", moduleInvite, Request{Command: "update", Update: &Update{Type: "request",
			CallID: "1-4711@192.0.2.10", CSeq: 1, FromURI: "alice@192.0.2.10:5060", ToURI: "bob@10.0.0.10:5060",
			FromTag: "4711SIPpTag001", UserAgent: "unknown agent", SignalingIP: addr("192.0.2.10"),
			Media: []Stream{{Type: "audio", IP: addr("192.0.2.10"), Port: 6000, Direction: "sendrecv"}}}}},
		{"engage_media_proxy with two streams", moduleEngaged, Request{Command: "update", Update: &Update{Type: "request",
			DialogID: "3:1887", CallID: "2-4711@192.0.2.10", CSeq: 20, FromURI: "alice@example.com", ToURI: "bob@example.com",
			FromTag: "a1", UserAgent: "SIPp/Linux", SignalingIP: addr("192.0.2.10"),
			Media: []Stream{{Type: "audio", IP: addr("192.0.2.10"), Port: 6000, Direction: "sendrecv"},
				{Type: "video", IP: addr("192.0.2.10"), Port: 6002, Direction: "sendonly", ICE: true}}}}},
		{"a 200 OK without SDP", strings.Replace(moduleOK, "media: audio:10.0.0.10:6000:sendrecv:ice=no\r\n", "", 1),
			Request{Command: "update", Update: &Update{Type: "reply", CallID: "1-4711@192.0.2.10", CSeq: 1,
				FromURI: "alice@192.0.2.10:5060", ToURI: "bob@10.0.0.10:5060", FromTag: "4711SIPpTag001",
				ToTag: "4712SIPpTag011", UserAgent: "unknown agent", SignalingIP: addr("10.0.0.10")}}},
		{"IPv6 media and a user agent with colons", "update\ntype: reply\ncall_id: x\ncseq: 2\nfrom_uri: a\nto_uri: b\n" +
			"from_tag: f\nuser_agent: Foo: 1.0\nmedia: audio:2001:db8::10:4000:inactive:ice=no\n",
			Request{Command: "update", Update: &Update{Type: "reply", CallID: "x", CSeq: 2, FromURI: "a", ToURI: "b",
				FromTag: "f", UserAgent: "Foo: 1.0",
				Media: []Stream{{Type: "audio", IP: addr("2001:db8::10"), Port: 4000, Direction: "inactive"}}}}},
		{"end_media_session", moduleRemove, Request{Command: "remove",
			Remove: &Remove{CallID: "1-4711@192.0.2.10", FromTag: "4712SIPpTag011", ToTag: "4711SIPpTag001"}}},
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
		{"nothing", "\r\n", errEmpty},
		{"an unknown command", "offer\r\ncall_id: x\r\n\r\n", errUnknownCommand},
		{"an update without from_tag", strings.Replace(moduleInvite, "from_tag: 4711SIPpTag001\r\n", "", 1), errMissing},
		{"a remove without call_id", "remove\r\nfrom_tag: a\r\n\r\n", errMissing},
		{"a type that is neither request nor reply", strings.Replace(moduleInvite, "type: request", "type: answer", 1), errSyntax},
		{"a cseq that is not a number", strings.Replace(moduleInvite, "cseq: 1\r", "cseq: 1 INVITE\r", 1), errSyntax},
		{"a header line without a colon", strings.Replace(moduleInvite, "cseq: 1\r", "cseq 1\r", 1), errSyntax},
		{"a bad signaling_ip", strings.Replace(moduleInvite, "signaling_ip: 192.0.2.10", "signaling_ip: host", 1), errSyntax},
		{"a stream with four fields", strings.Replace(moduleInvite, ":ice=no", "", 1), errSyntax},
		{"a stream with a hostname", strings.Replace(moduleInvite, "audio:192.0.2.10", "audio:pbx.example", 1), errSyntax},
		{"a stream port above 65535", strings.Replace(moduleInvite, ":6000:", ":70000:", 1), errSyntax},
		{"an unknown direction", strings.Replace(moduleInvite, "sendrecv", "sideways", 1), errSyntax},
		{"a bad ice flag", strings.Replace(moduleInvite, "ice=no", "ice=maybe", 1), errSyntax},
		{"a NUL in a line", strings.Replace(moduleInvite, "unknown agent", "un\x00known", 1), errSyntax},
		{"more than 32 streams", strings.Replace(moduleInvite, "audio:192.0.2.10:6000:sendrecv:ice=no",
			strings.Repeat("audio:192.0.2.10:6000:sendrecv:ice=no,", 32)+"audio:192.0.2.10:6000:sendrecv:ice=no", 1), errSyntax},
		{"too many lines", "remove\r\n" + strings.Repeat("x: y\r\n", maxLines+1), errTooLong},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse([]byte(c.in)); !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
}

func TestFormatWritesWhatTheModuleWrites(t *testing.T) {
	t.Parallel()
	for _, in := range []string{moduleInvite, moduleOK, moduleEngaged, moduleRemove} {
		r, err := Parse([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		// The module also writes its empty headers; Format leaves them out.
		want := strings.NewReplacer("dialog_id: \r\n", "", "to_tag: \r\n", "", "media_relay: \r\n", "").Replace(in)
		if got := r.Format(); got != want {
			t.Errorf("Format\n%q\nwant\n%q", got, want)
		}
	}
}

// FuzzParse: no panic; what parses formats to a request that parses the
// same.
func FuzzParse(f *testing.F) {
	for _, s := range []string{moduleInvite, moduleOK, moduleEngaged, moduleRemove,
		"update\ntype: reply\ncall_id: x\ncseq: 2\nfrom_uri: a\nto_uri: b\nfrom_tag: f\nuser_agent: u\nmedia: audio:2001:db8::10:4000:inactive:ice=no\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			return
		}
		again, err := Parse([]byte(r.Format()))
		if err != nil {
			t.Fatalf("re-parsing %q: %v", r.Format(), err)
		}
		if d := cmp.Diff(r, again, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); d != "" {
			t.Fatalf("round trip (-first +again)\n%s", d)
		}
	})
}
