package ngcalls_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/calls/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng/ngcalls"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng/ngtest"
	"github.com/nftrtpproxy/nftrtpproxy/relay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
)

// serve runs the ng server over the real call table on the in-memory
// dataplane, with the switchboard "edge" (gates "external" on 192.0.2.1
// and "internal" on 10.0.0.1, two port pairs each).
func serve(t *testing.T) (*ngtest.Client, *switchboard.Manager) {
	t.Helper()
	cfg := switchboardtest.Config(t, "30000-30003", "")
	m, _ := switchboardtest.Manager(t, cfg)
	c := calls.New(m, sdprelay.New(m), cfg.Switchboards, "edge")
	return ngtest.Dial(t, ngtest.Serve(t, ngcalls.New(c), ng.Options{})), m
}

const (
	offerSDP  = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	answerSDP = "v=0\r\no=- 1 1 IN IP4 10.0.0.10\r\ns=-\r\nc=IN IP4 10.0.0.10\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"
)

// kamailioOffer is an offer as Kamailio 5.6's rtpengine module sends it.
func kamailioOffer(callID string) map[string]any {
	return map[string]any{"supports": []any{"load limit"}, "sdp": offerSDP, "ICE": "remove",
		"direction": []any{"external", "internal"}, "flags": []any{"trust-address"},
		"replace": []any{"origin", "session-connection"}, "call-id": callID,
		"received-from": []any{"IP4", "192.0.2.10"}, "from-tag": "alice", "command": "offer"}
}

func TestACallThroughTheCallTable(t *testing.T) {
	t.Parallel()
	cl, m := serve(t)
	offer := cl.Do("1", kamailioOffer("c1"))
	if offer["result"] != "ok" || !strings.Contains(offer["sdp"].(string), "c=IN IP4 10.0.0.1\r\n") {
		t.Fatalf("offer: %v", offer)
	}
	ans := kamailioOffer("c1")
	ans["command"], ans["sdp"], ans["to-tag"] = "answer", answerSDP, "bob"
	if answer := cl.Do("2", ans); answer["result"] != "ok" || !strings.Contains(answer["sdp"].(string), "m=audio 30000 ") {
		t.Fatalf("answer: %v", answer)
	}
	if s := m.List()[0]; s.State != switchboard.Active || s.B.Signalled.RTP.String() != "10.0.0.10:5000" {
		t.Errorf("session after answer: %s, b %s", s.State, s.B.Signalled.RTP)
	}
	q := cl.Do("3", map[string]any{"command": "query", "call-id": "c1"})
	tags, _ := q["tags"].(map[string]any)
	if q["result"] != "ok" || tags["alice"] == nil || tags["bob"] == nil || q["totals"] == nil {
		t.Errorf("query: %v", q)
	}
	if l := cl.Do("4", map[string]any{"command": "list"}); fmt.Sprint(l["calls"]) != "[c1]" {
		t.Errorf("list: %v", l)
	}
	st := cl.Do("5", map[string]any{"command": "statistics"})
	if cur := st["statistics"].(map[string]any)["currentstatistics"].(map[string]any); cur["sessionsown"] != int64(1) {
		t.Errorf("statistics: %v", st)
	}
	if d := cl.Do("6", map[string]any{"command": "delete", "call-id": "c1", "from-tag": "alice"}); d["result"] != "ok" || d["totals"] == nil {
		t.Errorf("delete: %v", d)
	}
	if n := len(m.List()); n != 0 {
		t.Errorf("%d sessions after delete", n)
	}
	if d := cl.Do("7", map[string]any{"command": "delete", "call-id": "c1", "from-tag": "alice"}); d["warning"] == nil {
		t.Errorf("delete of a deleted call: %v, want ok with a warning", d)
	}
}

func TestCallTableErrorsGetRtpenginesReasons(t *testing.T) {
	t.Parallel()
	cl, _ := serve(t)
	bad := kamailioOffer("c3")
	bad["sdp"] = "v=0\r\nm=audio 70000 RTP/AVP 0\r\n"
	for i, tc := range []struct {
		name string
		req  map[string]any
		want string
	}{
		{"an answer to an unknown call", map[string]any{"command": "answer", "call-id": "nope", "from-tag": "a", "to-tag": "b", "sdp": answerSDP}, "Unknown call-id"},
		{"a query of an unknown call", map[string]any{"command": "query", "call-id": "nope"}, "Unknown call-id"},
		{"an offer with broken SDP", bad, "Failed to parse SDP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cl.Do(fmt.Sprint("e", i), tc.req)
			if diff := cmp.Diff(map[string]any{"result": "error", "error-reason": tc.want}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunningOutOfPortsSaysSoForKamailioToTryTheNextRelay(t *testing.T) {
	t.Parallel()
	cl, _ := serve(t)
	for i := range 2 { // two port pairs per gate
		if r := cl.Do(fmt.Sprint("p", i), kamailioOffer(fmt.Sprint("full-", i))); r["result"] != "ok" {
			t.Fatalf("offer %d: %v", i, r)
		}
	}
	if got := cl.Do("p3", kamailioOffer("full-3")); got["error-reason"] != "Ran out of ports" {
		t.Fatalf("third offer: %v", got)
	}
}

func TestRTPPFlagsFromTheInternalSide(t *testing.T) {
	t.Parallel()
	cl, m := serve(t)
	req := map[string]any{"command": "offer", "call-id": "c9", "from-tag": "x", "sdp": strings.ReplaceAll(offerSDP, "192.0.2.10", "10.0.0.10"),
		"rtpp-flags": "replace-origin direction=internal direction=external trust-address some-unknown-flag"}
	got := cl.Do("r1", req)
	if got["result"] != "ok" || !strings.Contains(got["sdp"].(string), "o=- 1 1 IN IP4 192.0.2.1\r\n") {
		t.Fatalf("offer with rtpp-flags from the internal side: %v", got)
	}
	if s := m.List()[0]; s.B.Signalled.RTP.String() != "10.0.0.10:4000" {
		t.Errorf("the offer from the internal side set b=%s a=%s", s.B.Signalled.RTP, s.A.Signalled.RTP)
	}
}

// query reports what each party sent, per stream, from the kernel's flows:
// packets, bytes and when the last packet passed (the flows' idle time).
func TestQueryReportsPacketsAndLastPacketPerStream(t *testing.T) {
	t.Parallel()
	cfg := switchboardtest.Config(t, "30000-30003", "")
	m, mem := switchboardtest.Manager(t, cfg)
	cl := ngtest.Dial(t, ngtest.Serve(t, ngcalls.New(calls.New(m, sdprelay.New(m), cfg.Switchboards, "edge")), ng.Options{}))
	cl.Do("1", kamailioOffer("c1"))
	ans := kamailioOffer("c1")
	ans["command"], ans["sdp"], ans["to-tag"] = "answer", answerSDP, "bob"
	cl.Do("2", ans)
	idx := m.List()[0].Index
	mem.SetFlows(
		relay.Flow{Mark: relay.Mark(4 * idx), Src: netip.MustParseAddrPort("192.0.2.10:4000"), Packets: 10, Bytes: 1720, Idle: 3 * time.Second},
		relay.Flow{Mark: relay.Mark(4*idx + 2), Src: netip.MustParseAddrPort("10.0.0.10:5000"), Packets: 8, Bytes: 1376, Idle: time.Second},
	)
	now := time.Now().Unix()
	q := cl.Do("3", map[string]any{"command": "query", "call-id": "c1"})
	rtp := func(tag string) map[string]any {
		t.Helper()
		defer func() {
			if recover() != nil {
				t.Fatalf("query: no RTP stream for %s in %v", tag, q)
			}
		}()
		media := q["tags"].(map[string]any)[tag].(map[string]any)["medias"].([]any)[0].(map[string]any)
		return media["streams"].([]any)[0].(map[string]any)
	}
	for _, tc := range []struct {
		tag           string
		packets, idle int64
	}{{"alice", 10, 3}, {"bob", 8, 1}} {
		s := rtp(tc.tag)
		if got := s["stats"].(map[string]any)["packets"]; got != tc.packets {
			t.Errorf("%s sent %v packets, want %d", tc.tag, got, tc.packets)
		}
		if last, _ := s["last packet"].(int64); last < now-tc.idle-1 || last > now-tc.idle+1 {
			t.Errorf("%s's last packet at %d, want %d ± 1 s (%d s ago)", tc.tag, last, now-tc.idle, tc.idle)
		}
	}
}

// A trusted SDP address behind NAT is where the caller says it receives;
// received-from is where its SIP came from, the NAT: its gate may learn
// the caller from either. strict-source reaches the session too.
func TestReceivedFromAndStrictSourceReachTheSession(t *testing.T) {
	t.Parallel()
	cl, m := serve(t)
	offer := kamailioOffer("c1")
	offer["received-from"] = []any{"IP4", "198.51.100.7"}
	offer["flags"] = []any{"trust-address", "strict-source"}
	if r := cl.Do("1", offer); r["result"] != "ok" {
		t.Fatalf("offer: %v", r)
	}
	s := m.List()[0]
	if a := s.A.Signalled; a.RTP.String() != "192.0.2.10:4000" || a.Source != netip.MustParseAddr("198.51.100.7") || !a.Strict {
		t.Errorf("caller signalled as %+v, want the SDP address, the SIP source 198.51.100.7 and strict", a)
	}
}
