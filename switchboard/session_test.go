package switchboard

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEndpointJSONNamesTheFieldThatIsWrong(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     Endpoint
		err      string
	}{
		{"an RTP address alone", `{"rtp":"192.0.2.10:4000"}`, ep("192.0.2.10:4000"), ""},
		{"RTP, RTCP and hold", `{"rtp":"[2001:db8::10]:4000","rtcp":"[2001:db8::10]:4009","hold":true}`,
			Endpoint{RTP: ap("[2001:db8::10]:4000"), RTCP: ap("[2001:db8::10]:4009"), Hold: true}, ""},
		{"an empty address is no address", `{"rtp":""}`, Endpoint{}, ""},
		{"a signalling source and strict learning", `{"rtp":"192.168.1.10:4000","source":"198.51.100.7","strict":true}`,
			Endpoint{RTP: ap("192.168.1.10:4000"), Source: mustAddr("198.51.100.7"), Strict: true}, ""},
		{"a source with a port", `{"source":"198.51.100.7:5060"}`, Endpoint{}, `source "198.51.100.7:5060": want an IP address`},
		{"an address without a port", `{"rtp":"192.0.2.10"}`, Endpoint{}, `rtp "192.0.2.10": want IP:PORT ([IPv6]:PORT)`},
		{"an IPv6 address without brackets", `{"rtcp":"2001:db8::10:4000"}`, Endpoint{}, `rtcp "2001:db8::10:4000": want IP:PORT ([IPv6]:PORT)`},
		{"an unknown field", `{"rtp":"192.0.2.10:4000","video":"x"}`, Endpoint{}, `endpoint: json: unknown field "video"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got Endpoint
			err := json.Unmarshal([]byte(tc.in), &got)
			if tc.err != "" {
				if diff := cmp.Diff(tc.err, errString(err)); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, addrs); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSessionJSONRoundTrips(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &Session{ID: "0123456789abcdef", Switchboard: "edge", Index: 7,
		GateA: ap("192.0.2.1:30000"), GateB: ap("10.0.0.1:30002"),
		A:     Peer{Signalled: Endpoint{RTP: ap("192.0.2.10:4000"), Hold: true}, Learned: ep("198.51.100.7:61000"), LearnUntil: now},
		B:     Peer{Signalled: Endpoint{RTP: ap("10.0.0.10:5000"), RTCP: ap("10.0.0.10:5009")}},
		State: Ringing, Created: now, Updated: now, Expires: now.Add(time.Minute), Labels: map[string]string{"call-id": "c1"}}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got Session
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	if diff := cmp.Diff(s, &got, addrs); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestLegSideNamesTheFourLegs(t *testing.T) {
	t.Parallel()
	for k, want := range []struct{ sideA, rtcp bool }{{true, false}, {true, true}, {false, false}, {false, true}} {
		idx, sideA, rtcp := legSide(0x52000000 | uint32(4*9+k))
		if idx != 9 || sideA != want.sideA || rtcp != want.rtcp {
			t.Errorf("%s: index %d, side a %t, rtcp %t", legNames[k], idx, sideA, rtcp)
		}
	}
}
