package relay

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// learnedOps renders what learnedChanges puts in each phase for the
// learned maps: "pre 0x52000004=0.0.0.0:0" and so on, sorted.
func learnedOps(t *testing.T, b Batch, held map[uint32]netip.AddrPort) []string {
	t.Helper()
	return learnedOpsOf(newObjects(), b, held)
}

// learnedOpsOf is learnedOps with o's kernel abilities; an element to
// destroy is rendered by its key alone: "gone learned4 0x52000004".
func learnedOpsOf(o *objects, b Batch, held map[uint32]netip.AddrPort) []string {
	pre, del, gone, add := elements{}, elements{}, elements{}, elements{}
	learnedChanges(o, b, held, pre, del, gone, add)
	var out []string
	for _, ph := range []struct {
		name string
		els  elements
	}{{"pre", pre}, {"del", del}, {"gone", gone}, {"add", add}} {
		for s, els := range ph.els {
			for _, e := range els {
				m, _ := parseMark(e.Key)
				if e.Val == nil {
					out = append(out, fmt.Sprintf("%s %s %#x", ph.name, s.Name, m))
					continue
				}
				ap, _ := parseEndpoint(e.Val, map[bool]int{true: 4, false: 16}[s == o.v4.learned])
				out = append(out, fmt.Sprintf("%s %s %#x=%s", ph.name, s.Name, m, ap))
			}
		}
	}
	slices.Sort(out)
	return out
}

// What a batch does to the learned maps: a removed leg's learned source
// goes (added first when its value is unknown, so that deleting never
// fails on a missing element), unless the leg comes back with it; an added
// leg's learned source is put, replacing one the kernel holds.
func TestLearnedChangesClearKeepAndReplace(t *testing.T) {
	t.Parallel()
	gate := netip.MustParseAddrPort("192.0.2.1:30000")
	src := netip.MustParseAddrPort("198.51.100.7:61000")
	other := netip.MustParseAddrPort("198.51.100.7:62000")
	learning := Leg{Mark: Mark(4), Gate: gate, Learn: true}
	learned := Leg{Mark: Mark(4), Gate: gate, Lock: src, Learned: src}
	for _, tc := range []struct {
		name string
		b    Batch
		held map[uint32]netip.AddrPort
		want []string
	}{
		{"a learning leg removed: whatever it learned is cleared", Batch{Remove: []Leg{learning}}, nil,
			[]string{"del learned4 0x52000004=0.0.0.0:0", "pre learned4 0x52000004=0.0.0.0:0"}},
		{"a leg that never learned: nothing", Batch{Remove: []Leg{{Mark: Mark(4), Gate: gate}}}, nil, nil},
		{"a learning leg put back as it was (its side re-pointed): what it learned is cleared",
			Batch{Remove: []Leg{learning}, Add: []Leg{learning}}, nil,
			[]string{"del learned4 0x52000004=0.0.0.0:0", "pre learned4 0x52000004=0.0.0.0:0"}},
		{"the daemon records what the kernel learned", Batch{Remove: []Leg{learning}, Add: []Leg{learned}}, nil,
			[]string{"add learned4 0x52000004=198.51.100.7:61000", "del learned4 0x52000004=0.0.0.0:0", "pre learned4 0x52000004=0.0.0.0:0"}},
		{"the kernel's value read back is kept", Batch{Remove: []Leg{learning}, Add: []Leg{learned}},
			map[uint32]netip.AddrPort{Mark(4): src}, nil},
		{"a learned leg changed elsewhere keeps its source", Batch{Remove: []Leg{learned}, Add: []Leg{learned}}, nil, nil},
		{"a learned leg removed: its known source goes", Batch{Remove: []Leg{learned}}, nil,
			[]string{"del learned4 0x52000004=198.51.100.7:61000", "pre learned4 0x52000004=198.51.100.7:61000"}},
		{"a read-back empty map clears nothing", Batch{Remove: []Leg{learning}}, map[uint32]netip.AddrPort{}, nil},
		{"a new leg over a stale element replaces it", Batch{Add: []Leg{learned}}, map[uint32]netip.AddrPort{Mark(4): other},
			[]string{"add learned4 0x52000004=198.51.100.7:61000", "del learned4 0x52000004=198.51.100.7:62000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, learnedOps(t, tc.b, tc.held)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// On a kernel that destroys elements by key (Linux 6.3), a removed leg's
// learned source is destroyed, one element whatever the kernel holds,
// instead of added and deleted; keeping and putting are unchanged.
func TestLearnedChangesDestroy(t *testing.T) {
	t.Parallel()
	gate := netip.MustParseAddrPort("192.0.2.1:30000")
	src := netip.MustParseAddrPort("198.51.100.7:61000")
	other := netip.MustParseAddrPort("198.51.100.7:62000")
	learning := Leg{Mark: Mark(4), Gate: gate, Learn: true}
	learned := Leg{Mark: Mark(4), Gate: gate, Lock: src, Learned: src}
	o := newObjects()
	o.destroy = true
	for _, tc := range []struct {
		name string
		b    Batch
		held map[uint32]netip.AddrPort
		want []string
	}{
		{"a learning leg removed", Batch{Remove: []Leg{learning}}, nil, []string{"gone learned4 0x52000004"}},
		{"a learned leg removed", Batch{Remove: []Leg{learned}}, nil, []string{"gone learned4 0x52000004"}},
		{"a leg that never learned", Batch{Remove: []Leg{{Mark: Mark(4), Gate: gate}}}, nil, nil},
		{"a learning leg put back as it was", Batch{Remove: []Leg{learning}, Add: []Leg{learning}}, nil, []string{"gone learned4 0x52000004"}},
		{"a learning leg read back as unlearned", Batch{Remove: []Leg{learning}}, map[uint32]netip.AddrPort{}, nil},
		{"the daemon records what the kernel learned", Batch{Remove: []Leg{learning}, Add: []Leg{learned}}, nil,
			[]string{"add learned4 0x52000004=198.51.100.7:61000", "gone learned4 0x52000004"}},
		{"a learned leg changed elsewhere keeps its source", Batch{Remove: []Leg{learned}, Add: []Leg{learned}}, nil, nil},
		{"a learned leg relearned", Batch{Remove: []Leg{learned}, Add: []Leg{{Mark: Mark(4), Gate: gate, Lock: other, Learned: other}}}, nil,
			[]string{"add learned4 0x52000004=198.51.100.7:62000", "gone learned4 0x52000004"}},
	} {
		if diff := cmp.Diff(tc.want, learnedOpsOf(o, tc.b, tc.held)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestAllowIsCanonical(t *testing.T) {
	t.Parallel()
	a, b := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("192.0.2.10")
	if Allow(a, b) != Allow(b, a, b) || Allow(a, b) != [MaxAllowed]netip.Addr{b, a} {
		t.Errorf("Allow(%s, %s) = %v, want both sorted once", a, b, Allow(a, b))
	}
	if got := Allow(netip.IPv4Unspecified(), netip.Addr{}, netip.MustParseAddr("::ffff:192.0.2.10")); got != [MaxAllowed]netip.Addr{b} {
		t.Errorf("Allow of unspecified, invalid and mapped = %v, want the mapped address unmapped only", got)
	}
}
