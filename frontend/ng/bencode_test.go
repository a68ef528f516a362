package ng

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/zeebo/bencode"
)

// checkAppender fails unless rep's appender writes what zeebo/bencode
// writes for it.
func checkAppender(t *testing.T, name string, rep any) {
	t.Helper()
	want, err := bencode.EncodeBytes(rep)
	if err != nil {
		t.Fatalf("%s: the library: %v", name, err)
	}
	got, ok := appendReply([]byte("cookie "), rep)
	if !ok {
		t.Fatalf("%s: %T has no appender", name, rep)
	}
	if string(got[len("cookie "):]) != string(want) {
		t.Errorf("%s:\n got %q\nwant %q", name, got[len("cookie "):], want)
	}
}

func TestReplyAppendersMatchTheLibrary(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 0)
	full := &CallStats{Created: at, LastSignal: at.Add(time.Second), Tags: []TagStats{
		{Tag: "b", Created: at, InDialogueWith: "a", Label: "callee", Medias: []MediaStats{{Index: 1, Type: "audio",
			Protocol: "RTP/AVP", Streams: []StreamStats{
				{LocalPort: 30000, Endpoint: netip.MustParseAddrPort("10.0.0.10:5000"),
					Advertised: netip.MustParseAddrPort("[::ffff:10.0.0.10]:5000"), LastPacket: at,
					Counters: Counters{Packets: 3, Bytes: 480, Errors: 1}},
				{RTCP: true, LocalPort: 30001, Advertised: netip.MustParseAddrPort("[2001:db8::1]:5001")},
			}}, {Index: 2}}},
		{Tag: "a", Created: at},
		{Tag: "a", Label: "again", Medias: []MediaStats{{Index: 3, Streams: []StreamStats{{}}}}},
		{Medias: []MediaStats{}},
	}}
	for _, tc := range []struct {
		name string
		rep  any
	}{
		{"pong", pong},
		{"an error", failure(nil, errNoCommand)},
		{"a delete's warning", failure(&Request{Command: "delete"}, ErrUnknownCall)},
		{"an offer's SDP", sdpReply{Result: "ok", SDP: "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"}},
		{"an empty SDP", sdpReply{Result: "ok"}},
		{"no calls", listReply{Result: "ok"}},
		{"an empty list", listReply{Result: "ok", Calls: []string{}}},
		{"two calls", listReply{Result: "ok", Calls: []string{"b@x", "a@x"}}},
		{"an empty query", newQueryReply(&CallStats{})},
		{"a full query", newQueryReply(full)},
		{"a query with a warning", func() *queryReply { q := newQueryReply(full); q.Warning = "w"; return q }()},
	} {
		checkAppender(t, tc.name, tc.rep)
	}
	if _, ok := appendReply(nil, newStatisticsReply(&Totals{})); ok {
		t.Error("statistics have an appender; this test does not check it")
	}
}

// FuzzReplyAppenders builds replies of fuzzed strings and numbers and
// checks their bytes against the library's.
func FuzzReplyAppenders(f *testing.F) {
	f.Add("ok", "v=0\r\n", "a", "b", uint16(30000), uint64(7), int64(1700000000), uint8(3))
	f.Add("", "", "", "", uint16(0), uint64(0), int64(0), uint8(0))
	f.Add("\xff", "é", "tag with spaces", "10", uint16(65535), uint64(1<<63), int64(-1), uint8(255))
	f.Fuzz(func(t *testing.T, s1, s2, tag1, tag2 string, port uint16, n uint64, sec int64, shape uint8) {
		checkAppender(t, "result", result{Result: s1, ErrorReason: s2, Warning: tag1})
		checkAppender(t, "sdp", sdpReply{Result: s1, SDP: s2})
		checkAppender(t, "list", listReply{Result: s1, Calls: []string{s2, tag1}})
		rng := rand.New(rand.NewPCG(uint64(shape), n))
		at := time.Unix(sec%(1<<40), 0)
		st := &CallStats{Created: at, LastSignal: at}
		for i := range int(shape % 4) {
			ts := TagStats{Tag: []string{tag1, tag2}[i%2], Label: s1, InDialogueWith: tag2, Created: at}
			for m := range rng.IntN(3) {
				ms := MediaStats{Index: m + 1, Type: s2, Protocol: s1}
				for range rng.IntN(3) {
					ss := StreamStats{RTCP: rng.IntN(2) == 0, LocalPort: port, LastPacket: at,
						Counters: Counters{Packets: n, Bytes: rng.Uint64(), Errors: uint64(shape)}}
					if rng.IntN(2) == 0 {
						ss.Endpoint = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, shape}), port)
					}
					if rng.IntN(2) == 0 {
						ss.Advertised = netip.MustParseAddrPort("[2001:db8::" + strconv.Itoa(int(shape)) + "]:1")
					}
					ms.Streams = append(ms.Streams, ss)
				}
				ts.Medias = append(ts.Medias, ms)
			}
			st.Tags = append(st.Tags, ts)
		}
		checkAppender(t, "query", newQueryReply(st))
	})
}

// BenchmarkEncodeQueryReply encodes a delete's reply for a call of two
// parties, by the appenders and by zeebo/bencode.
func BenchmarkEncodeQueryReply(b *testing.B) {
	at := time.Unix(1700000000, 0)
	st := &CallStats{Created: at, LastSignal: at}
	for _, tag := range []string{"a", "b"} {
		ts := TagStats{Tag: tag, Created: at, Medias: []MediaStats{{Index: 1, Type: "audio", Protocol: "RTP/AVP"}}}
		for k := range 2 {
			ts.Medias[0].Streams = append(ts.Medias[0].Streams, StreamStats{RTCP: k == 1, LocalPort: uint16(30000 + k),
				Advertised: netip.MustParseAddrPort("192.0.2.10:4000")})
		}
		st.Tags = append(st.Tags, ts)
	}
	b.Run("appender", func(b *testing.B) {
		s := &Server{}
		for b.Loop() {
			s.encodeReply([]byte("cookie"), newQueryReply(st), false)
		}
	})
	b.Run("library", func(b *testing.B) {
		for b.Loop() {
			if _, err := bencode.EncodeBytes(newQueryReply(st)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzParseBencode holds parseBencode to zeebo/bencode's decoding into an
// interface{}: what checkBencode lets through, both decode to the same
// values, or both fail.
func FuzzParseBencode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.bencode")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{"d1:ai-0ee", "d1:ai+7e1:ai03ee", "d1:ale1:bdee", "d1:x3:abce", "di1e1:ae", "d3:abce",
		"d1:ai9223372036854775808ee", "d1:ali1ei2eld1:b0:eee", "d02:ab1:ce", "d1:aie"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) == 0 || body[0] != 'd' || checkBencode(body) != nil {
			return
		}
		var want map[string]any
		werr := bencode.NewDecoder(bytes.NewReader(body)).Decode(&want)
		got, _, err := parseBencode(body)
		if (err != nil) != (werr != nil) {
			t.Fatalf("%q: parseBencode error %v, the library's %v", body, err, werr)
		}
		if err != nil {
			return
		}
		if diff := cmp.Diff(want, got.(map[string]any)); diff != "" {
			t.Fatalf("%q (-library +parseBencode):\n%s", body, diff)
		}
	})
}

// The appenders write each field of the reply types by name; one added to
// a type without being added to its appender would silently go missing
// from the replies. These are the fields they know.
func TestReplyAppendersKnowEveryField(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    any
		want []string
	}{
		{result{}, []string{"Result", "ErrorReason", "Warning"}},
		{sdpReply{}, []string{"Result", "SDP"}},
		{listReply{}, []string{"Result", "Calls"}},
		{queryReply{}, []string{"Result", "Warning", "Created", "LastSignal", "Tags", "Totals"}},
		{tagReply{}, []string{"Tag", "Label", "Created", "InDialogueWith", "Medias"}},
		{mediaReply{}, []string{"Index", "Type", "Protocol", "Streams", "Flags"}},
		{streamReply{}, []string{"LocalPort", "Endpoint", "Advertised", "LastPacket", "Flags", "Stats"}},
		{endpointReply{}, []string{"Family", "Address", "Port"}},
		{counters{}, []string{"Packets", "Bytes", "Errors"}},
	} {
		var got []string
		for typ, i := reflect.TypeOf(tc.v), 0; i < typ.NumField(); i++ {
			got = append(got, typ.Field(i).Name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%T has fields %v; its appender (bencode.go) writes %v", tc.v, got, tc.want)
		}
	}
}
