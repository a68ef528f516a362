package ng

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nftrtpproxy/nftrtpproxy/calls"
	"github.com/nftrtpproxy/nftrtpproxy/sdprelay"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard"
	"github.com/nftrtpproxy/nftrtpproxy/switchboard/switchboardtest"
	"github.com/zeebo/bencode"
)

// newCalls builds the real call table over an in-memory dataplane.
func newCalls(t *testing.T) (*calls.Calls, *switchboard.Manager) {
	t.Helper()
	cfg := switchboardtest.Config(t, "30000-30003", "")
	m, _ := switchboardtest.Manager(t, cfg)
	return calls.New(m, sdprelay.New(m), cfg.Switchboards, "edge"), m
}

// serve runs a server for c on loopback and returns a connected client.
func serve(t *testing.T, c Calls) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(pc, c, Options{}).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	cl, err := net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func exchange(t *testing.T, cl *net.UDPConn, cookie string, body []byte) []byte {
	t.Helper()
	if _, err := cl.Write(append([]byte(cookie+" "), body...)); err != nil {
		t.Fatal(err)
	}
	_ = cl.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 65535)
	n, err := cl.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	reply, ok := bytes.CutPrefix(buf[:n], []byte(cookie+" "))
	if !ok {
		t.Fatalf("reply %q lacks cookie %q", buf[:n], cookie)
	}
	return reply
}

func call(t *testing.T, cl *net.UDPConn, cookie string, req map[string]any) map[string]any {
	t.Helper()
	b, err := bencode.EncodeBytes(req)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := bencode.DecodeBytes(exchange(t, cl, cookie, b), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

const offerSDP = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
const answerSDP = "v=0\r\no=- 1 1 IN IP4 10.0.0.10\r\ns=-\r\nc=IN IP4 10.0.0.10\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"

// kamailioOffer is an offer as Kamailio 5.6's rtpengine module sends it
// (keys captured on the wire).
func kamailioOffer(callID string) map[string]any {
	return map[string]any{"supports": []any{"load limit"}, "sdp": offerSDP, "ICE": "remove",
		"direction": []any{"external", "internal"}, "flags": []any{"trust-address"},
		"replace": []any{"origin", "session-connection"}, "call-id": callID,
		"received-from": []any{"IP4", "192.0.2.10"}, "from-tag": "alice", "command": "offer"}
}

func TestPingOfferAnswerQueryListStatisticsDelete(t *testing.T) {
	c, m := newCalls(t)
	cl := serve(t, c)
	if got := call(t, cl, "1", map[string]any{"command": "ping"}); got["result"] != "pong" {
		t.Fatalf("ping: %v", got)
	}
	offer := call(t, cl, "2", kamailioOffer("c1"))
	if offer["result"] != "ok" || !strings.Contains(offer["sdp"].(string), "c=IN IP4 10.0.0.1\r\n") {
		t.Fatalf("offer: %v", offer)
	}
	ans := kamailioOffer("c1")
	ans["command"], ans["sdp"], ans["to-tag"] = "answer", answerSDP, "bob"
	answer := call(t, cl, "3", ans)
	if answer["result"] != "ok" || !strings.Contains(answer["sdp"].(string), "m=audio 30000 ") {
		t.Fatalf("answer: %v", answer)
	}
	if s := m.List()[0]; s.State != switchboard.Active || s.B.Signalled.RTP.String() != "10.0.0.10:5000" {
		t.Errorf("session after answer: %s, b %s", s.State, s.B.Signalled.RTP)
	}
	q := call(t, cl, "4", map[string]any{"command": "query", "call-id": "c1"})
	if q["result"] != "ok" || q["totals"] == nil || q["tags"].(map[string]any)["alice"] == nil {
		t.Errorf("query: %v", q)
	}
	if l := call(t, cl, "5", map[string]any{"command": "list"}); fmt.Sprint(l["calls"]) != "[c1]" {
		t.Errorf("list: %v", l)
	}
	st := call(t, cl, "6", map[string]any{"command": "statistics"})
	cur := st["statistics"].(map[string]any)["currentstatistics"].(map[string]any)
	if cur["sessionsown"] != int64(1) {
		t.Errorf("statistics: %v", st)
	}
	if d := call(t, cl, "7", map[string]any{"command": "delete", "call-id": "c1", "from-tag": "alice"}); d["result"] != "ok" || d["warning"] != nil {
		t.Errorf("delete: %v", d)
	}
	if len(m.List()) != 0 {
		t.Errorf("%d sessions after delete", len(m.List()))
	}
	if d := call(t, cl, "8", map[string]any{"command": "delete", "call-id": "c1", "from-tag": "alice"}); d["result"] != "ok" || d["warning"] == nil {
		t.Errorf("delete of an unknown call: %v, want ok with a warning", d)
	}
}

func TestErrorReasonsAreRtpenginesStrings(t *testing.T) {
	c, _ := newCalls(t)
	cl := serve(t, c)
	without := func(key string, base map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range base {
			if k != key {
				out[k] = v
			}
		}
		return out
	}
	answer := kamailioOffer("c2")
	answer["command"] = "answer"
	bad := kamailioOffer("c3")
	bad["sdp"] = "v=0\r\nm=audio 70000 RTP/AVP 0\r\n"
	for i, tc := range []struct {
		name string
		req  map[string]any
		want string
	}{
		{"an offer without SDP", without("sdp", kamailioOffer("c2")), "No SDP body in message"},
		{"an offer without call-id", without("call-id", kamailioOffer("c2")), "No call-id in message"},
		{"an offer without from-tag", without("from-tag", kamailioOffer("c2")), "No from-tag in message"},
		{"an answer without to-tag", answer, "No to-tag in message"},
		{"an answer to an unknown call", map[string]any{"command": "answer", "call-id": "nope", "from-tag": "a", "to-tag": "b", "sdp": answerSDP}, "Unknown call-id"},
		{"an offer with broken SDP", bad, "Failed to parse SDP"},
		{"an unknown command", map[string]any{"command": "frobnicate"}, `Unrecognized command: "frobnicate"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := call(t, cl, fmt.Sprint("e", i), tc.req)
			if diff := cmp.Diff(map[string]any{"result": "error", "error-reason": tc.want}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunningOutOfPortsSaysSo(t *testing.T) {
	c, _ := newCalls(t)
	cl := serve(t, c)
	for i := range 2 { // two port pairs per gate
		if r := call(t, cl, fmt.Sprint("p", i), kamailioOffer(fmt.Sprint("full-", i))); r["result"] != "ok" {
			t.Fatalf("offer %d: %v", i, r)
		}
	}
	got := call(t, cl, "p3", kamailioOffer("full-3"))
	if got["error-reason"] != "Ran out of ports" {
		t.Fatalf("third offer: %v", got)
	}
}

func TestJSONRequestsAreAnsweredInJSON(t *testing.T) {
	c, _ := newCalls(t)
	cl := serve(t, c)
	reply := exchange(t, cl, "j1", []byte(`{"command":"ping"}`))
	var got map[string]any
	if err := json.Unmarshal(reply, &got); err != nil || got["result"] != "pong" {
		t.Fatalf("reply %q (%v), want JSON pong", reply, err)
	}
}

func TestRTPPFlagsStringIsUnderstood(t *testing.T) {
	c, m := newCalls(t)
	cl := serve(t, c)
	req := map[string]any{"command": "offer", "call-id": "c9", "from-tag": "x", "sdp": strings.Replace(offerSDP, "192.0.2.10", "10.0.0.10", -1),
		"rtpp-flags": "replace-origin direction=internal direction=external trust-address some-unknown-flag"}
	got := call(t, cl, "r1", req)
	if got["result"] != "ok" || !strings.Contains(got["sdp"].(string), "o=- 1 1 IN IP4 192.0.2.1\r\n") {
		t.Fatalf("offer with rtpp-flags from the internal side: %v", got)
	}
	if s := m.List()[0]; s.B.Signalled.RTP.String() != "10.0.0.10:4000" {
		t.Errorf("the offer from the internal side set b=%s a=%s", s.B.Signalled.RTP, s.A.Signalled.RTP)
	}
}

// blockingCalls holds offers until released, to retransmit while in flight.
type blockingCalls struct {
	*calls.Calls
	offers  atomic.Int32
	release chan struct{}
}

func (b *blockingCalls) Offer(ctx context.Context, r calls.Request) (string, error) {
	b.offers.Add(1)
	<-b.release
	return b.Calls.Offer(ctx, r)
}

func TestRetransmissionsAreAnsweredOnceEvenInFlight(t *testing.T) {
	c, m := newCalls(t)
	bc := &blockingCalls{Calls: c, release: make(chan struct{})}
	cl := serve(t, bc)
	b, _ := bencode.EncodeBytes(kamailioOffer("c5"))
	msg := append([]byte("42_7 "), b...)
	for range 3 { // the first copy and two retransmissions while it runs
		if _, err := cl.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	close(bc.release)
	_ = cl.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 65535)
	var replies []string
	for range 3 {
		n, err := cl.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		replies = append(replies, string(buf[:n]))
	}
	if replies[0] != replies[1] || replies[1] != replies[2] {
		t.Errorf("replies differ:\n%q", replies)
	}
	if n := bc.offers.Load(); n != 1 || len(m.List()) != 1 {
		t.Errorf("offer executed %d times, %d sessions; want once and 1", n, len(m.List()))
	}
	// After the first completes, a late retransmission is served from cache.
	if got := exchange(t, cl, "42_7", b); string(got) != strings.TrimPrefix(replies[0], "42_7 ") {
		t.Errorf("late retransmission answered %q", got)
	}
	if n := bc.offers.Load(); n != 1 {
		t.Errorf("offer executed %d times after a late retransmission", n)
	}
}

func TestReplyCacheExpires(t *testing.T) {
	t.Parallel()
	c := newReplyCache(time.Minute, 10)
	now := time.Now()
	e, first := c.claim("k", now)
	if !first {
		t.Fatal("first claim not first")
	}
	c.fill(e, []byte("x"))
	if _, first := c.claim("k", now.Add(time.Second)); first {
		t.Error("a retransmission within the TTL was executed again")
	}
	c.expire(now.Add(2 * time.Minute))
	if c.len() != 0 {
		t.Errorf("%d entries after expiry", c.len())
	}
}
