package relay

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/nftables"
)

// An answer removes a session's legs and adds them back with a peer: only
// the elements that differ reach the kernel (a peer each), not the gates,
// sources and admission the legs keep.
func TestLegElementsOmitWhatALegKeeps(t *testing.T) {
	d := &nftDataplane{obj: newObjects()}
	var old, new []Leg
	for k := range 4 {
		l := Leg{Mark: Mark(uint32(4 + k)), Gate: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(30000+k)),
			Source: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), uint16(30000+k)),
			Guard:  true, Learn: true, Allowed: Allow(netip.MustParseAddr("198.51.100.7"))}
		old = append(old, l)
		l.Peer = netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), 4000)
		new = append(new, l)
	}
	pre, del, _, add := d.legElements(Batch{Remove: old, Add: new}, nil)
	count := func(e elements) map[string]int {
		out := map[string]int{}
		for s, els := range e {
			if len(els) > 0 {
				out[s.Name] = len(els)
			}
		}
		return out
	}
	// The learned maps are still cleared (learned_linux.go); everything
	// else is the one change.
	want := map[string]string{
		"pre": "map[learned4:4]",
		"del": "map[learned4:4]",
		"add": "map[dnat4:4]",
	}
	for name, e := range map[string]elements{"pre": pre, "del": del, "add": add} {
		if got := fmt.Sprint(count(e)); got != want[name] {
			t.Errorf("%s: %s, want %s", name, got, want[name])
		}
	}
}

// A large batch (a restart's repair) finds the common elements through an
// index and keeps changed ones: a map element whose value changes is
// deleted and added again.
func TestUnchangedLargeBatch(t *testing.T) {
	o := newObjects()
	del, add := elements{}, elements{}
	for i := range 100 {
		mark := markBytes(uint32(i))
		del.push(o.v4.dnat, 100, setEl(mark, []byte{10, 0, 0, 1, 0, byte(i), 0, 0}))
		v := byte(i)
		if i%10 == 0 {
			v = 255
		}
		add.push(o.v4.dnat, 100, setEl(mark, []byte{10, 0, 0, 1, 0, v, 0, 0}))
	}
	del.unchanged(add)
	if len(del[o.v4.dnat]) != 10 || len(add[o.v4.dnat]) != 10 {
		t.Fatalf("kept %d removals and %d additions, want the 10 that change", len(del[o.v4.dnat]), len(add[o.v4.dnat]))
	}
	for i, e := range add[o.v4.dnat] {
		if e.Val[5] != 255 || string(e.Key) != string(del[o.v4.dnat][i].Key) {
			t.Errorf("addition %d: %v, removal %v", i, e, del[o.v4.dnat][i])
		}
	}
}

func setEl(key, val []byte) nftables.SetElement { return nftables.SetElement{Key: key, Val: val} }
