package ng

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zeebo/bencode"
)

func TestDecodeKeysInAnyOrderAndBothEncodings(t *testing.T) {
	t.Parallel()
	want := &Request{Command: "offer", CallID: "c", FromTag: "f", SDP: "v=0",
		Flags: []string{"trust-address", "symmetric"}, Direction: []string{"external", "internal"}, Ignored: []string{"supports"}}
	for _, tc := range []struct {
		name string
		body string
	}{
		{"a bencoded dictionary in key order", "d7:call-id1:c7:command5:offer9:directionl8:external8:internale5:flagsl13:trust address9:symmetrice8:from-tag1:f3:sdp3:v=08:supportsl10:load limitee"},
		{"a bencoded dictionary out of order", "d7:command5:offer3:sdp3:v=07:call-id1:c8:from-tag1:f5:flagsl13:trust-address9:symmetrice9:directionl8:external8:internale8:supportsl10:load limitee"},
		{"a JSON dictionary", `{"command":"offer","call-id":"c","from-tag":"f","sdp":"v=0","flags":["trust-address","symmetric"],"direction":["external","internal"],"supports":["load limit"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			got.JSON = false
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeRejectsWhatIsNotARequest(t *testing.T) {
	t.Parallel()
	for _, body := range []string{"", "i42e", "l4:pinge", "d7:command", "d7:commandl1:xee", "{"} {
		if _, err := Decode([]byte(body)); err == nil {
			t.Errorf("Decode(%q) succeeded", body)
		}
	}
}

func TestRTPPFlagsParse(t *testing.T) {
	t.Parallel()
	r := &Request{}
	if err := r.parseRTPPFlags("trust-address replace-origin replace-session-connection direction=ext direction=int ICE=remove via-branch=z9 SIP-source-address"); err != nil {
		t.Fatal(err)
	}
	want := &Request{Flags: []string{"trust-address", "sip-source-address"}, Replace: []string{"origin", "session-connection"},
		Direction: []string{"ext", "int"}, ICE: "remove", ViaBranch: "z9"}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// FuzzDecode: no panic; a decoded request survives an encode/decode round
// trip of its dictionary unchanged.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"d7:command4:pinge",
		"d8:supportsl10:load limite3:sdp40:v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4 RTP/AVP 0\r\n3:ICE6:remove9:directionl8:external8:internale5:flagsl13:trust-addresse7:replacel6:origin18:session-connectione7:call-id5:1-2@313:received-froml3:IP410:192.0.2.10e8:from-tag3:tag7:command5:offere",
		`{"command":"delete","call-id":"x","from-tag":"y","rtpp-flags":"via-branch=z direction=a"}`,
		"d7:command4:list5:limiti10ee",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := Decode(body)
		if err != nil {
			return
		}
		dict := map[string]any{"command": r.Command, "call-id": r.CallID, "from-tag": r.FromTag, "to-tag": r.ToTag,
			"via-branch": r.ViaBranch, "sdp": r.SDP, "flags": anys(r.Flags), "replace": anys(r.Replace), "direction": anys(r.Direction),
			"ICE": r.ICE, "received-from": anys(r.ReceivedFrom), "media-address": r.MediaAddress, "limit": int64(r.Limit)}
		b, err := bencode.EncodeBytes(dict)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Decode(b)
		if err != nil {
			t.Fatalf("re-decoding %q: %v", b, err)
		}
		r.JSON, r.Ignored = false, nil
		norm := func(x *Request) {
			for _, l := range []*[]string{&x.Flags, &x.Replace, &x.Direction, &x.ReceivedFrom} {
				if len(*l) == 0 {
					*l = nil
				}
			}
		}
		norm(r)
		norm(again)
		if diff := cmp.Diff(r, again); diff != "" {
			t.Fatalf("round trip (-first +again):\n%s", diff)
		}
	})
}

func anys(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

func BenchmarkDecodeEncodeOffer(b *testing.B) {
	body, _ := bencode.EncodeBytes(kamailioOffer("bench-call@192.0.2.10"))
	reply := map[string]any{"result": "ok", "sdp": offerSDP}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
		if _, err := encode(reply, false); err != nil {
			b.Fatal(err)
		}
	}
}
