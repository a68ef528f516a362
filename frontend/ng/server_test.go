package ng_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng"
	"github.com/nftrtpproxy/nftrtpproxy/frontend/ng/ngtest"
	"github.com/zeebo/bencode"
)

const offerSDP = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

// kamailioOffer is an offer as Kamailio 5.6's rtpengine_offer("trust-address
// replace-origin replace-session-connection ICE=remove direction=external
// direction=internal") sends it.
func kamailioOffer(callID string) map[string]any {
	return map[string]any{"supports": []any{"load limit"}, "sdp": offerSDP, "ICE": "remove",
		"direction": []any{"external", "internal"}, "flags": []any{"trust-address"},
		"replace": []any{"origin", "session-connection"}, "call-id": callID,
		"received-from": []any{"IP4", "192.0.2.10"}, "from-tag": "alice", "command": "offer"}
}

// kamailioAnswer is the answer to kamailioOffer from bob's 200 OK.
func kamailioAnswer(callID string) map[string]any {
	m := kamailioOffer(callID)
	delete(m, "direction")
	m["command"], m["to-tag"], m["received-from"] = "answer", "bob", []any{"IP4", "10.0.0.20"}
	return m
}

func without(m map[string]any, key string) map[string]any {
	delete(m, key)
	return m
}

// start serves b on loopback and returns a client.
func start(t *testing.T, b ng.Backend, opts ng.Options) *ngtest.Client {
	t.Helper()
	return ngtest.Dial(t, ngtest.Serve(t, b, opts))
}

// Kamailio's rtpengine module reads a delete reply's statistics ($rtpstat,
// MOS); rtpengine leaves them out with the flag fast.
func TestDeleteRepliesWithTheCallsFinalStatistics(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	b := &ngtest.Backend{Now: func() time.Time { return now }}
	cl := start(t, b, ng.Options{})
	cl.Do("o", kamailioOffer("c1"))
	cl.Do("a", kamailioAnswer("c1"))
	got := cl.Do("d", map[string]any{"command": "delete", "call-id": "c1", "from-tag": "alice"})
	want := map[string]any{
		"result": "ok", "created": now.Unix(), "last signal": now.Unix(),
		"tags": map[string]any{
			"alice": tagStats("alice", "bob", now, 30000),
			"bob":   tagStats("bob", "alice", now, 30002),
		},
		"totals": map[string]any{"RTP": stats(200, 34400), "RTCP": stats(4, 320)},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("delete (-want +got):\n%s", diff)
	}
	if got := cl.Do("d2", map[string]any{"command": "delete", "call-id": "c1", "from-tag": "alice"}); got["warning"] == nil || got["totals"] != nil {
		t.Errorf("delete of a deleted call: %v, want ok with a warning and no statistics", got)
	}
}

func TestPingIsAnsweredPong(t *testing.T) {
	t.Parallel()
	cl := start(t, &ngtest.Backend{}, ng.Options{})
	if got := string(cl.Exchange("5323_1", []byte("d7:command4:pinge"))); got != "d6:result4:ponge" {
		t.Errorf("ping: %q, want d6:result4:ponge", got)
	}
}

func TestACallFromOfferToDelete(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	b := &ngtest.Backend{Now: func() time.Time { return now }}
	cl := start(t, b, ng.Options{})
	for _, step := range []struct {
		name string
		req  map[string]any
		want map[string]any
	}{
		{"offer", kamailioOffer("c1"), map[string]any{"result": "ok", "sdp": offerSDP + "a=relayed\r\n"}},
		{"answer", kamailioAnswer("c1"), map[string]any{"result": "ok", "sdp": offerSDP + "a=relayed\r\n"}},
		{"query", map[string]any{"command": "query", "call-id": "c1", "from-tag": "alice"}, map[string]any{
			"result": "ok", "created": now.Unix(), "last signal": now.Unix(),
			"tags": map[string]any{
				"alice": tagStats("alice", "bob", now, 30000),
				"bob":   tagStats("bob", "alice", now, 30002),
			},
			"totals": map[string]any{"RTP": stats(200, 34400), "RTCP": stats(4, 320)},
		}},
		{"list", map[string]any{"command": "list"}, map[string]any{"result": "ok", "calls": []any{"c1"}}},
		{"statistics", map[string]any{"command": "statistics"}, map[string]any{"result": "ok", "statistics": map[string]any{
			"currentstatistics": map[string]any{"sessionsown": int64(1), "sessionsforeign": int64(0), "sessionstotal": int64(1),
				"transcodedmedia": int64(0), "packetrate": int64(0), "byterate": int64(0), "errorrate": int64(0)},
			"totalstatistics": map[string]any{"uptime": "0", "managedsessions": int64(1), "relayedpackets": int64(0),
				"relayedpacketerrors": int64(0)},
		}}},
		{"delete", map[string]any{"command": "delete", "call-id": "c1", "from-tag": "alice", "flags": []any{"fast"}},
			map[string]any{"result": "ok"}},
		{"list after delete", map[string]any{"command": "list", "limit": int64(5)}, map[string]any{"result": "ok", "calls": []any{}}},
	} {
		if diff := cmp.Diff(step.want, cl.Do(strings.ReplaceAll(step.name, " ", "-"), step.req), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", step.name, diff)
		}
	}
	var methods []string
	for _, c := range b.Calls() {
		methods = append(methods, c.Method)
	}
	if diff := cmp.Diff([]string{"Offer", "Answer", "Query", "List", "Statistics", "Delete", "List"}, methods); diff != "" {
		t.Errorf("backend calls (-want +got):\n%s", diff)
	}
}

// tagStats is a query reply's entry for what ngtest.Backend reports.
func tagStats(tag, other string, at time.Time, port int64) map[string]any {
	stream := func(kind string, port, packets, bytes int64) map[string]any {
		return map[string]any{"local port": port, "last packet": at.Unix(), "flags": []any{kind}, "stats": stats(packets, bytes)}
	}
	return map[string]any{"tag": tag, "created": at.Unix(), "in dialogue with": other, "medias": []any{
		map[string]any{"index": int64(1), "type": "audio", "protocol": "RTP/AVP", "flags": []any{}, "streams": []any{
			stream("RTP", port, 100, 17200), stream("RTCP", port+1, 2, 160),
		}},
	}}
}

func stats(packets, bytes int64) map[string]any {
	return map[string]any{"packets": packets, "bytes": bytes, "errors": int64(0)}
}

func TestMissingKeysAreRefusedWithRtpenginesReasons(t *testing.T) {
	t.Parallel()
	b := &ngtest.Backend{}
	cl := start(t, b, ng.Options{})
	for i, tc := range []struct {
		name string
		req  map[string]any
		want string
	}{
		{"an offer without SDP", without(kamailioOffer("c"), "sdp"), "No SDP body in message"},
		{"an offer without call-id", without(kamailioOffer("c"), "call-id"), "No call-id in message"},
		{"an offer without from-tag", without(kamailioOffer("c"), "from-tag"), "No from-tag in message"},
		{"an answer without SDP", without(kamailioAnswer("c"), "sdp"), "No SDP body in message"},
		{"an answer without to-tag", without(kamailioAnswer("c"), "to-tag"), "No to-tag in message"},
		{"a delete without call-id", map[string]any{"command": "delete", "from-tag": "f"}, "No call-id in message"},
		{"a delete without from-tag", map[string]any{"command": "delete", "call-id": "c"}, "No from-tag in message"},
		{"a query without call-id", map[string]any{"command": "query"}, "No call-id in message"},
		{"a list with a negative limit", map[string]any{"command": "list", "limit": int64(-1)}, "invalid limit, must be >= 0"},
		{"an unknown command", map[string]any{"command": "start recording", "call-id": "c"}, "Unrecognized command"},
		{"no command", map[string]any{"call-id": "c"}, `Dictionary contains no key "command"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cl.Do(fmt.Sprint("m", i), tc.req)
			if diff := cmp.Diff(map[string]any{"result": "error", "error-reason": tc.want}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if calls := b.Calls(); len(calls) != 0 {
		t.Errorf("the backend was called for requests that lack keys: %+v", calls)
	}
}

func TestBackendErrorsGetRtpenginesReasons(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"no ports left", fmt.Errorf(`switchboard "edge": %w`, ng.ErrNoPorts), "Ran out of ports"},
		{"SDP that cannot be parsed", fmt.Errorf(`sdp: line 7: invalid port "70000": %w`, ng.ErrInvalidSDP), "Failed to parse SDP"},
		{"an unknown call", fmt.Errorf(`call "c": %w`, ng.ErrUnknownCall), "Unknown call-id"},
		{"a full relay", fmt.Errorf(`switchboard "edge": %w: max-sessions 10`, ng.ErrSessionLimit),
			`Parallel session limit reached: switchboard "edge": session limit reached: max-sessions 10`},
		{"any other error", errors.New(`relay: install session 12: operation not permitted`), `relay: install session 12: operation not permitted`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := &ngtest.Backend{}
			b.Fail("Offer", tc.err)
			got := start(t, b, ng.Options{}).Do("1", kamailioOffer("c"))
			if diff := cmp.Diff(map[string]any{"result": "error", "error-reason": tc.want}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestAnAnswerToAnUnknownCallIsRefused(t *testing.T) {
	t.Parallel()
	got := start(t, &ngtest.Backend{}, ng.Options{}).Do("1", kamailioAnswer("nope"))
	if diff := cmp.Diff(map[string]any{"result": "error", "error-reason": "Unknown call-id"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDeletingAnUnknownCallIsOKWithAWarning(t *testing.T) {
	t.Parallel()
	cl := start(t, &ngtest.Backend{}, ng.Options{})
	got := cl.Do("1", map[string]any{"command": "delete", "call-id": "gone", "from-tag": "alice"})
	if diff := cmp.Diff(map[string]any{"result": "ok", "warning": "Call-ID not found or tags didn't match"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	got = cl.Do("2", map[string]any{"command": "delete", "call-id": "gone", "from-tag": "alice", "flags": []any{"fatal"}})
	if diff := cmp.Diff(map[string]any{"result": "error", "error-reason": "Call-ID not found or tags didn't match"}, got); diff != "" {
		t.Errorf("with the flag fatal (-want +got):\n%s", diff)
	}
}

// warningBackend returns a warning from Delete.
type warningBackend struct{ ngtest.Backend }

func (*warningBackend) Delete(context.Context, *ng.Request) (string, error) {
	return "media of branch z9 kept", nil
}

func TestADeleteWarningOfTheBackendIsPassedOn(t *testing.T) {
	t.Parallel()
	got := start(t, &warningBackend{}, ng.Options{}).Do("1", map[string]any{"command": "delete", "call-id": "c", "from-tag": "f"})
	if diff := cmp.Diff(map[string]any{"result": "ok", "warning": "media of branch z9 kept"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestUnknownKeysAndFlagsAreIgnored(t *testing.T) {
	t.Parallel()
	b := &ngtest.Backend{}
	req := kamailioOffer("c")
	req["flags"] = []any{"trust-address", "port-latching", "no-jitter-buffer"}
	req["codec"] = map[string]any{"transcode": []any{"PCMA"}}
	req["transport-protocol"] = "RTP/AVP"
	req["rtpp-flags"] = "SIP-source-address OSRTP-accept T.38=[decode]"
	if got := start(t, b, ng.Options{}).Do("1", req); got["result"] != "ok" {
		t.Fatalf("offer with unknown keys and flags: %v", got)
	}
	r := b.Calls()[0].Request
	want := &ng.Request{Command: "offer", CallID: "c", FromTag: "alice", SDP: []byte(offerSDP),
		Flags: []string{"port-latching", "no-jitter-buffer", "OSRTP-accept"}, Replace: []string{"origin", "session-connection"},
		Direction: [2]string{"external", "internal"}, ICE: "remove", ReceivedFrom: netip.MustParseAddr("192.0.2.10"),
		TrustAddress: true, SIPSourceAddress: true, Ignored: []string{"codec", "supports", "transport-protocol", "rtpp-flags:T.38"}}
	if diff := cmp.Diff(want, r, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("request given to the backend (-want +got):\n%s", diff)
	}
}

func TestJSONRequestsAreAnsweredInJSON(t *testing.T) {
	t.Parallel()
	cl := start(t, &ngtest.Backend{}, ng.Options{})
	for _, tc := range []struct{ name, body, want string }{
		{"ping", `{"command":"ping"}`, `{"result":"pong"}`},
		{"offer", `{"command":"offer","call-id":"j","from-tag":"a","sdp":"v=0\r\n"}`, `{"result":"ok","sdp":"v=0\r\na=relayed\r\n"}`},
		{"list", `{"command":"list"}`, `{"result":"ok","calls":["j"]}`},
		{"broken JSON", `{"command":`, `{"result":"error","error-reason":"Failed to parse JSON document"}`},
	} {
		got := cl.Exchange("j-"+strings.ReplaceAll(tc.name, " ", "-"), []byte(tc.body))
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("%s: reply %q is no JSON: %v", tc.name, got, err)
		}
		_ = json.Unmarshal([]byte(tc.want), &w)
		if diff := cmp.Diff(w, g); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestDatagramsWithoutCookieAreDropped(t *testing.T) {
	t.Parallel()
	cl := start(t, &ngtest.Backend{}, ng.Options{})
	cl.Send("", []byte("d7:command4:pinge")) // " d7:..." : an empty cookie
	cl.Send("d7:command4:pinge", nil)        // "d7:command4:pinge " : no dictionary, answered as an error
	if got := string(cl.Read("d7:command4:pinge")); got != "d12:error-reason22:Invalid NG data format6:result5:errore" {
		t.Errorf("a cookie without dictionary: %q", got)
	}
	if got := string(cl.Exchange("2", []byte("d7:command4:pinge"))); got != "d6:result4:ponge" {
		t.Errorf("the ping after them: %q", got)
	}
}

func TestARetransmissionIsAnsweredFromTheCache(t *testing.T) {
	t.Parallel()
	b := &ngtest.Backend{}
	cl := start(t, b, ng.Options{})
	body, _ := bencode.EncodeBytes(kamailioOffer("c"))
	first := string(cl.Exchange("1_4242_7", body))
	for i := range 4 { // Kamailio sends a request up to 5 times
		if got := string(cl.Exchange("1_4242_7", body)); got != first {
			t.Errorf("retransmission %d answered %q, want %q", i+1, got, first)
		}
	}
	if n := b.Count("Offer"); n != 1 {
		t.Errorf("offer executed %d times, want once", n)
	}
	if got := cl.Do("1_4242_8", kamailioOffer("c")); got["result"] != "ok" || b.Count("Offer") != 2 {
		t.Errorf("the next cookie was not executed: %v", got)
	}
}

func TestARetransmissionInFlightWaitsForTheFirstReply(t *testing.T) {
	t.Parallel()
	b := &ngtest.Backend{Hold: make(chan struct{}), Entered: make(chan string, 1)}
	logs := &logRecorder{msgs: make(chan string, 100)}
	cl := start(t, b, ng.Options{Logger: slog.New(logs)})
	body, _ := bencode.EncodeBytes(kamailioOffer("c"))
	cl.Send("1_4242_9", body)
	<-b.Entered // the first copy is in the backend
	cl.Send("1_4242_9", body)
	cl.Send("1_4242_9", body)
	for parked := 0; parked < 2; {
		if strings.Contains(<-logs.msgs, "retransmission of a request in flight") {
			parked++
		}
	}
	close(b.Hold)
	replies := []string{string(cl.Read("1_4242_9")), string(cl.Read("1_4242_9")), string(cl.Read("1_4242_9"))}
	if replies[0] != replies[1] || replies[1] != replies[2] || !strings.Contains(replies[0], "a=relayed") {
		t.Errorf("replies to the three copies:\n%q", replies)
	}
	if n := b.Count("Offer"); n != 1 {
		t.Errorf("offer executed %d times, want once", n)
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	b := &ngtest.Backend{Hold: make(chan struct{}), Entered: make(chan string, 2)}
	cl := start(t, b, ng.Options{Concurrency: 1})
	body, _ := bencode.EncodeBytes(kamailioOffer("c"))
	cl.Send("a", body)
	cl.Send("b", body)
	<-b.Entered
	select {
	case <-b.Entered:
		t.Fatal("a second request entered the backend while the first held the only slot")
	case <-time.After(100 * time.Millisecond):
	}
	close(b.Hold)
	cl.Read("a")
	cl.Read("b")
}

// logRecorder is a slog.Handler that passes every message on.
type logRecorder struct{ msgs chan string }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	select {
	case l.msgs <- r.Message:
	default:
	}
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func TestALongCookieIsRefusedAndNeverExecuted(t *testing.T) {
	t.Parallel()
	b := &ngtest.Backend{}
	cl := start(t, b, ng.Options{})
	body, _ := bencode.EncodeBytes(kamailioOffer("c"))
	long := strings.Repeat("c", 257)
	want := "d12:error-reason50:cookie too long: 257 bytes, above the limit of 2566:result5:errore"
	if got := string(cl.Exchange(long, body)); got != want {
		t.Errorf("a 257-byte cookie: %q, want %q", got, want)
	}
	if n := b.Count("Offer"); n != 0 {
		t.Errorf("the offer under a long cookie was executed %d times", n)
	}
	if got := cl.Do(strings.Repeat("c", 256), kamailioOffer("c")); got["result"] != "ok" {
		t.Errorf("a 256-byte cookie: %v", got)
	}
}
