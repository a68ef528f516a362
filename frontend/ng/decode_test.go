package ng

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/zeebo/bencode"
)

// The requests in testdata are laid out as Kamailio's rtpengine module
// builds them (its own key order, not bencode's sorted one).
const (
	testCallID   = "a84b4c76e66710@pc33.example.com"
	testOfferSDP = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n" +
		"m=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
	testAnswerSDP = "v=0\r\no=bob 2808844564 2808844564 IN IP4 10.0.0.20\r\ns=-\r\nc=IN IP4 10.0.0.20\r\nt=0 0\r\n" +
		"m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n" +
		"a=fmtp:101 0-16\r\na=sendrecv\r\n"
)

var (
	alice = netip.MustParseAddr("192.0.2.10")
	bob   = netip.MustParseAddr("10.0.0.20")
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeReadsWhatKamailioSends(t *testing.T) {
	t.Parallel()
	offer := &Request{Command: "offer", CallID: testCallID, FromTag: "1928301774", SDP: []byte(testOfferSDP),
		Replace: []string{"origin", "session-connection"}, Direction: [2]string{"external", "internal"},
		ICE: "remove", TrustAddress: true}
	for _, tc := range []struct {
		file string
		want *Request
	}{
		{"kamailio56-offer.bencode", with(offer, func(r *Request) {
			r.ReceivedFrom, r.Ignored = alice, []string{"supports"}
		})},
		{"kamailio56-answer.bencode", &Request{Command: "answer", CallID: testCallID, FromTag: "1928301774",
			ToTag: "a6c85cf", ViaBranch: "z9hG4bK776asdhds", SDP: []byte(testAnswerSDP),
			Replace: []string{"origin", "session-connection"}, ICE: "remove", TrustAddress: true,
			ReceivedFrom: bob, Ignored: []string{"supports"}}},
		{"kamailio56-delete.bencode", &Request{Command: "delete", CallID: testCallID, FromTag: "1928301774",
			ReceivedFrom: alice, Ignored: []string{"supports"}}},
		{"kamailio56-query.bencode", &Request{Command: "query", CallID: testCallID, FromTag: "1928301774",
			ToTag: "a6c85cf", ReceivedFrom: alice, Ignored: []string{"supports"}}},
		{"kamailio60-offer-rtpp-flags.bencode", with(offer, func(r *Request) {
			r.ViaBranch, r.Ignored = "z9hG4bK776asdhds", []string{"sip-message-type", "supports"}
		})},
		{"offer.json", with(offer, func(r *Request) {
			r.Replace, r.ICE, r.TrustAddress, r.StrictSource = []string{"origin"}, "", true, true
			r.ReceivedFrom, r.Label, r.AddressFamily, r.JSON = alice, "caller", "IP4", true
		})},
		{"list.json", &Request{Command: "list", Limit: 10, JSON: true}},
		{"ping.bencode", &Request{Command: "ping"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			got, err := Decode(readTestdata(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, addrs); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// with returns a copy of r changed by f.
func with(r *Request, f func(*Request)) *Request {
	c := *r
	f(&c)
	return &c
}

var addrs = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestDecodeTakesKeysInAnyOrderSpellingAndType(t *testing.T) {
	t.Parallel()
	want := &Request{Command: "offer", CallID: "42", FromTag: "f", SDP: []byte("v=0\r\n"),
		Direction: [2]string{"pub", "priv"}, MediaAddress: netip.MustParseAddr("2001:db8::1"),
		SIPSourceAddress: true, Symmetric: true, Limit: 7}
	for _, tc := range []struct {
		name string
		body string
	}{
		{"bencode in bencode's key order",
			"d7:call-id2:427:command5:offer9:directionl3:pub4:prive5:flagsl18:SIP-source-address9:symmetrice8:from-tag1:f5:limiti7e13:media-address11:2001:db8::13:sdp5:v=0\r\ne"},
		{"bencode in another order",
			"d3:sdp5:v=0\r\n5:flagsl18:SIP source address9:SYMMETRICe7:command5:offer8:from-tag1:f13:media address11:2001:db8::17:call-id2:429:directionl3:pub4:prive5:limiti7ee"},
		{"bencode with a number for the call-id and a string for the limit",
			"d7:call-idi42e7:command5:offer8:from_tag1:f3:sdp5:v=0\r\n5:flags28:sip_source_address symmetric9:directionl3:pub4:prive13:media-address11:2001:db8::15:limit1:7e"},
		{"JSON", `{"limit":7,"sdp":"v=0\r\n","command":"offer","call-id":42,"from-tag":"f","direction":["pub","priv"],` +
			`"flags":["SIP-source-address","symmetric"],"media-address":"2001:db8::1"}`},
		{"JSON with blanks after it", `{"limit":"7","sdp":"v=0\r\n","command":"offer","call-id":"42","from-tag":"f","direction":["pub","priv"],` +
			`"flags":["SIP-source-address","symmetric"],"media-address":"2001:db8::1"}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Decode([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			got.JSON = false
			if diff := cmp.Diff(want, got, addrs); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeTakesByteStringsAsStrings(t *testing.T) {
	t.Parallel()
	asStrings, err := bencode.EncodeBytes(map[string]any{"command": "offer", "sdp": "v=0\r\n\xff", "flags": []any{"trust-address"}})
	if err != nil {
		t.Fatal(err)
	}
	asBytes, err := bencode.EncodeBytes(map[string]any{"command": []byte("offer"), "sdp": []byte("v=0\r\n\xff"), "flags": []any{[]byte("trust-address")}})
	if err != nil {
		t.Fatal(err)
	}
	a, errA := Decode(asStrings)
	b, errB := Decode(asBytes)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if diff := cmp.Diff(a, b, addrs); diff != "" {
		t.Errorf("(-strings +bytes):\n%s", diff)
	}
	if string(b.SDP) != "v=0\r\n\xff" || !b.TrustAddress {
		t.Errorf("decoded %+v, want the SDP's bytes unchanged and trust-address", b)
	}
}

func TestRTPPFlagsFillTheSameFields(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		flags string
		dict  string // more keys of the dictionary
		want  Request
	}{
		{"Kamailio's usual offer flags", "replace-origin replace-session-connection ICE=remove direction=external direction=internal trust-address", "",
			Request{Replace: []string{"origin", "session-connection"}, ICE: "remove", Direction: [2]string{"external", "internal"}, TrustAddress: true}},
		{"bare internal and external are directions", "  internal   external SIP-source-address", "",
			Request{Direction: [2]string{"internal", "external"}, SIPSourceAddress: true}},
		{"keys with values", "label=callee address-family=IP6 media-address=192.0.2.7 to-tag=t2 received-from=[IP4 192.0.2.9]", "",
			Request{Label: "callee", AddressFamily: "IP6", MediaAddress: netip.MustParseAddr("192.0.2.7"), ToTag: "t2",
				ReceivedFrom: netip.MustParseAddr("192.0.2.9")}},
		{"bracketed lists", "replace=[origin session-connection] flags=[strict-source asymmetric]", "",
			Request{Replace: []string{"origin", "session-connection"}, StrictSource: true, Asymmetric: true}},
		{"unknown flags and keys, also with nested lists", "port-latching codec=[transcode=[PCMA PCMU] strip=[EVS]] OSRTP-accept", "",
			Request{Flags: []string{"port-latching", "OSRTP-accept"}, Ignored: []string{"rtpp-flags:codec"}}},
		{"the dictionary's keys win", "via-branch=z9-other direction=a direction=b call-id=other", "9:directionl1:x1:ye10:via-branch5:z9-me",
			Request{ViaBranch: "z9-me", Direction: [2]string{"x", "y"}, CallID: "other"}},
		{"Kamailio's via-branch directives are not branches", "via-branch=auto-next", "", Request{}},
		{"a key without a value is a flag", "trust-address= fatal", "", Request{TrustAddress: true, Flags: []string{"fatal"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := "d7:command4:ping10:rtpp-flags" + strconv.Itoa(len(tc.flags)) + ":" + tc.flags + tc.dict + "e"
			got, err := Decode([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Command = "ping"
			if diff := cmp.Diff(&tc.want, got, addrs); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeRefusesWhatIsNoRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, reason string
	}{
		{"an empty datagram body", "", "Invalid NG data format"},
		{"a list", "l4:pinge", "Invalid NG data format"},
		{"a truncated dictionary", "d7:command", "Could not decode bencode dictionary"},
		{"a string longer than the datagram", "d7:command999999999:pinge", "Could not decode bencode dictionary"},
		{"lists nested too deep", "d1:x" + strings.Repeat("l", 100) + strings.Repeat("e", 100) + "e", "Could not decode bencode dictionary"},
		{"a dictionary with an integer key", "di1e4:pinge", "Could not decode bencode dictionary"},
		{"bytes after the dictionary", "d7:command4:pingexyz", "Could not decode bencode dictionary"},
		{"broken JSON", `{"command":`, "Failed to parse JSON document"},
		{"JSON followed by more", `{"command":"ping"} {}`, "Failed to parse JSON document"},
		{"no command", "d7:call-id1:ce", `Dictionary contains no key "command"`},
		{"a command that is a list", "d7:commandl4:pingee", `ng: key "command": want a string, got a list`},
		{"three directions", "d7:command5:offer9:directionl1:a1:b1:cee", `ng: key "direction": want 2 interfaces, got 3: ["a" "b" "c"]`},
		{"three directions in rtpp-flags", "d7:command5:offer10:rtpp-flags35:direction=a direction=b direction=ce",
			`ng: key "rtpp-flags": want 2 interfaces, got 3: ["a" "b" "c"]`},
		{"a received-from that is no address", "d7:command5:offer13:received-froml3:IP49:pc33.hostee", `ng: key "received-from": invalid address "pc33.host"`},
		{"a limit that is no number", "d7:command4:list5:limit3:tene", `ng: key "limit": want an integer, got "ten"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := Decode([]byte(tc.body))
			if err == nil {
				t.Fatalf("Decode(%q) = %+v, want an error", tc.body, r)
			}
			if got := failure(nil, err); got.ErrorReason != tc.reason {
				t.Errorf("Decode(%q): %v; error-reason %q, want %q", tc.body, err, got.ErrorReason, tc.reason)
			}
		})
	}
}

func TestEncodedRequestsDecodeTheSame(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*")
	if err != nil || len(files) == 0 {
		t.Fatal(files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			roundTrip(t, readTestdata(t, filepath.Base(f)))
		})
	}
}

// roundTrip checks that what body decodes to encodes and decodes to the
// same request.
func roundTrip(t *testing.T, body []byte) {
	t.Helper()
	r, err := Decode(body)
	if err != nil {
		return
	}
	b, err := r.Encode()
	if err != nil {
		t.Fatalf("encoding %+v: %v", r, err)
	}
	again, err := Decode(b)
	if err != nil {
		t.Fatalf("decoding %q, the encoding of %+v: %v", b, r, err)
	}
	if diff := cmp.Diff(r, again, addrs, cmpopts.IgnoreFields(Request{}, "Ignored")); diff != "" {
		t.Fatalf("%q decodes differently once encoded as %q (-first +again):\n%s", body, b, diff)
	}
}

// FuzzDecode: no input panics, and what decodes re-encodes and decodes to
// the same request.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"d7:command4:list5:limiti-3ee",
		"d7:command6:delete7:call-id1:c8:from-tag1:f5:flagsl5:fatalee",
		"d7:command5:offer10:rtpp-flags61:codec=[transcode=[PCMA PCMU]] replace=[origin] via-branch=z9 ]e",
		`{"command":"answer","call-id":"c","from-tag":"f","to-tag":"t","sdp":"v=0","received-from":["IP6","::ffff:192.0.2.1"],"ICE":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		roundTrip(t, body)
	})
}

// BenchmarkDecodeEncodeOffer decodes Kamailio's offer and encodes an offer
// reply: the codec's share of the work per offer.
func BenchmarkDecodeEncodeOffer(b *testing.B) {
	body := readTestdata(b, "kamailio56-offer.bencode")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r, err := Decode(body)
		if err != nil {
			b.Fatal(err)
		}
		(&Server{}).encodeReply([]byte("cookie"), sdpReply{Result: "ok", SDP: string(r.SDP)}, r.JSON)
	}
}
