package switchboard

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"
)

// checkRecord fails unless appendRecord writes json.Marshal's bytes.
func checkRecord(t *testing.T, name string, rec record) {
	t.Helper()
	want, err := json.Marshal(rec)
	if err != nil {
		t.Fatalf("%s: json.Marshal: %v", name, err)
	}
	if got := appendRecord([]byte("x"), &rec)[1:]; string(got) != string(want) {
		t.Errorf("%s:\n got %s\nwant %s", name, got, want)
	}
}

func TestAppendRecordIsEncodingJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 6, 21, 0, 0, 123456789, time.UTC)
	full := &Session{ID: "a1b2", Switchboard: "edge", Index: 7,
		GateA: netip.MustParseAddrPort("192.0.2.1:30000"), GateB: netip.MustParseAddrPort("[2001:db8::1]:30002"),
		A: Peer{Signalled: Endpoint{RTP: netip.MustParseAddrPort("192.0.2.10:4000"), RTCP: netip.MustParseAddrPort("192.0.2.10:4005"),
			Hold: true, Source: netip.MustParseAddr("::ffff:192.0.2.10"), Strict: true},
			Learned: Endpoint{Source: netip.MustParseAddr("fe80::1%eth<0>")}, LearnUntil: at},
		B:     Peer{Learned: Endpoint{RTP: netip.AddrPortFrom(netip.Addr{}, 5), RTCP: netip.MustParseAddrPort("[fe80::1%a&b]:9")}},
		State: Active, Created: at, Updated: at.In(time.FixedZone("x", 3600)), Expires: at.Add(time.Minute),
		Labels: map[string]string{"z": "<b>&", "a": "é\u2028\x01\"\\", "bad": "\xff", "": ""},
		Ended:  &[legsPerSession]Counters{{Packets: 1, Bytes: 2}, {}, {Packets: 1 << 63}, {}}}
	for _, tc := range []struct {
		name string
		rec  record
	}{
		{"a put of a new session", record{Op: "put", Session: &Session{ID: "x", State: Ringing, Created: at}, Gen: 9}},
		{"a put of every field", record{Op: "put", Session: full, Locks: 5, Gen: 1 << 31}},
		{"a zero session", record{Op: "put", Session: &Session{}}},
		{"a delete", record{Op: "del", ID: "a1b2", Gen: 3}},
		{"a gen record", record{Op: "gen", Gen: 12, Boot: "3f1c-<uuid>", NetNS: 4026531840}},
		{"nothing", record{}},
		{"a transaction", record{Op: "txn", Gen: 4, Txn: []record{{Op: "put", Session: full, Locks: 1}, {Op: "del", ID: "x"}}}},
		{"an empty transaction", record{Op: "txn", Txn: []record{}}},
	} {
		checkRecord(t, tc.name, tc.rec)
	}
}

// FuzzAppendRecord checks appendRecord against json.Marshal on sessions of
// fuzzed strings, addresses, numbers and times.
func FuzzAppendRecord(f *testing.F) {
	f.Add("id", "edge", "key", "value", []byte{192, 0, 2, 1}, uint16(30000), uint32(7), int64(1700000000123456789), uint8(0))
	f.Add("", "", "", "", []byte{}, uint16(0), uint32(0), int64(0), uint8(255))
	f.Add("<>&", "\xff\xfe", "\u2028", "\x00\t\n", []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint16(65535),
		uint32(1<<32-1), int64(-1), uint8(0x55))
	f.Fuzz(func(t *testing.T, id, sb, key, value string, ip []byte, port uint16, n uint32, nanos int64, bits uint8) {
		addr, _ := netip.AddrFromSlice(ip)
		if bits&1 != 0 && addr.Is6() {
			addr = addr.WithZone(value)
		}
		ap := netip.AddrPortFrom(addr, port)
		at := time.Unix(0, nanos)
		if bits&2 != 0 {
			at = at.In(time.FixedZone(key, int(n%86400)))
		}
		end := Endpoint{RTP: ap, Hold: bits&4 != 0, Source: addr, Strict: bits&8 != 0}
		s := &Session{ID: id, Switchboard: sb, Index: n, GateA: ap, State: State(value),
			A: Peer{Signalled: end, LearnUntil: at}, B: Peer{Learned: Endpoint{RTCP: ap}}, Created: at, Updated: at}
		if bits&16 != 0 {
			s.Labels, s.Expires = map[string]string{key: value, value: key}, at
		}
		if bits&32 != 0 {
			s.Ended = &[legsPerSession]Counters{{Packets: uint64(nanos), Bytes: uint64(n)}}
		}
		if _, err := json.Marshal(s); err != nil {
			t.Skip("encoding/json refuses it (a year past 9999)")
		}
		checkRecord(t, "put", record{Op: id, Session: s, Locks: bits, Gen: n})
		checkRecord(t, "gen", record{Op: sb, ID: key, Gen: n, Boot: value, NetNS: uint64(nanos)})
		checkRecord(t, "txn", record{Op: "txn", Txn: []record{{Op: "put", Session: s}, {Op: "del", ID: id, Gen: n}}})
	})
}

// BenchmarkAppendRecord encodes an answered session's put record by hand
// and by encoding/json.
func BenchmarkAppendRecord(b *testing.B) {
	at := time.Now()
	s := &Session{ID: "0123456789abcdef", Switchboard: "edge", Index: 7,
		GateA: netip.MustParseAddrPort("192.0.2.1:30000"), GateB: netip.MustParseAddrPort("10.0.0.1:30002"),
		A:     Peer{Signalled: Endpoint{RTP: netip.MustParseAddrPort("192.0.2.10:4000")}},
		B:     Peer{Signalled: Endpoint{RTP: netip.MustParseAddrPort("10.0.0.10:5000")}},
		State: Active, Created: at, Updated: at}
	rec := record{Op: "put", Session: s, Locks: 3, Gen: 99}
	b.Run("appender", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = appendRecord(buf[:0], &rec)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// appendRecord writes each field of the journalled types by name; one
// added to a type without being added to it would silently go missing
// from the journal. These are the fields it knows.
func TestAppendRecordKnowsEveryField(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    any
		want []string
	}{
		{record{}, []string{"Op", "ID", "Session", "Locks", "Gen", "Boot", "NetNS", "Txn"}},
		{Session{}, []string{"ID", "Switchboard", "Index", "GateA", "GateB", "A", "B", "State", "Created", "Updated",
			"Expires", "Labels", "Ended"}},
		{Peer{}, []string{"Signalled", "Learned", "LearnUntil"}},
		{Endpoint{}, []string{"RTP", "RTCP", "Hold", "Source", "Strict"}},
		{Counters{}, []string{"Packets", "Bytes"}},
	} {
		var got []string
		for typ, i := reflect.TypeOf(tc.v), 0; i < typ.NumField(); i++ {
			got = append(got, typ.Field(i).Name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%T has fields %v; appendRecord (journal_encode.go) writes %v", tc.v, got, tc.want)
		}
	}
}
