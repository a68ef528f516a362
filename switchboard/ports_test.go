package switchboard

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// takeAll takes pairs until p runs out and returns them in port order.
func takeAll(p *ports) []uint16 {
	var got []uint16
	for {
		port, ok := p.take()
		if !ok {
			slices.Sort(got)
			return got
		}
		got = append(got, port)
	}
}

func TestPortsHandOutEveryEvenPortOnceThenRunOut(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		r    PortRange
		want []uint16
	}{
		{"an even start uses the start", PortRange{30000, 30007}, []uint16{30000, 30002, 30004, 30006}},
		{"an odd start begins at the next even port", PortRange{30001, 30008}, []uint16{30002, 30004, 30006}},
		{"a trailing even port without its odd one is unused", PortRange{30000, 30004}, []uint16{30000, 30002}},
		{"one pair", PortRange{30000, 30001}, []uint16{30000}},
		{"the top of the port space", PortRange{65530, 65535}, []uint16{65530, 65532, 65534}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPorts(tc.r)
			if diff := cmp.Diff(tc.want, takeAll(p)); diff != "" {
				t.Errorf("taken (-want +got):\n%s", diff)
			}
			if p.free != 0 {
				t.Errorf("%d pairs free after running out", p.free)
			}
			if port, ok := p.take(); ok {
				t.Errorf("took %d from an exhausted range", port)
			}
		})
	}
}

// Pairs are chosen at random among the free ones: from a fresh range every
// pair is as likely to come first (a stranger cannot aim at the next
// call's ports), and a released pair can serve again.
func TestPortsChooseUniformlyAmongFreePairs(t *testing.T) {
	t.Parallel()
	const draws = 4000
	count := map[uint16]int{}
	for range draws {
		p := newPorts(PortRange{30000, 30007}) // 30000 30002 30004 30006
		if _, ok := p.take(); !ok {
			t.Fatal("took nothing from a fresh range")
		}
		port, _ := p.take() // the second call's pair: any of the three left
		count[port]++
	}
	for _, port := range []uint16{30000, 30002, 30004, 30006} {
		// Each is second 1000 times on average (sd ~27): a pair that
		// comes second much more or less often is predictable.
		if n := count[port]; n < 800 || n > 1200 {
			t.Errorf("port %d came second %d times in %d, want about %d: %v", port, n, draws, draws/4, count)
		}
	}
}

// In a nearly full range, where random draws among all pairs miss, the
// k-th free pair for a random k is taken.
func TestPortsInANearlyFullRangeTakeTheKthFreePair(t *testing.T) {
	t.Parallel()
	p := newPorts(PortRange{30000, 30199}) // 100 pairs
	for port := uint16(30000); port < 30196; port += 2 {
		if err := p.claim(port); err != nil {
			t.Fatal(err)
		}
	}
	var asked []int
	p.pick = func(n int) int { asked = append(asked, n); return 0 }
	port, ok := p.take()
	if !ok || port != 30196 {
		t.Errorf("took %d, %v; want 30196, the first of the two free pairs", port, ok)
	}
	if want := append(slices.Repeat([]int{100}, randomTries), 2); !slices.Equal(asked, want) {
		t.Errorf("drew among %v, want %d draws among all 100 pairs, then one among the 2 free", asked, randomTries)
	}
	p.pick = func(n int) int { return n - 1 }
	if port, ok := p.take(); !ok || port != 30198 {
		t.Errorf("took %d, %v; want the last free pair 30198", port, ok)
	}
}

func TestReleaseIsHarmlessTwiceOrForForeignPorts(t *testing.T) {
	t.Parallel()
	p := newPorts(PortRange{30000, 30003})
	port, _ := p.take()
	for _, x := range []uint16{port, port, 30001, 29998, 30004, 0} {
		p.release(x)
	}
	if p.free != 2 {
		t.Errorf("%d pairs free, want 2", p.free)
	}
	if diff := cmp.Diff([]uint16{30000, 30002}, takeAll(p)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestClaimTakesAChosenPairOnlyOnce(t *testing.T) {
	t.Parallel()
	p := newPorts(PortRange{30001, 30010}) // 30002 30004 30006 30008
	if err := p.claim(30004); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		port uint16
		want string
	}{
		{30004, "port 30004 is already in use"},
		{30005, "port 30005 is not an RTP port of the range"},
		{30000, "port 30000 is not an RTP port of the range"},
		{30010, "port 30010 is not an RTP port of the range"},
	} {
		err := p.claim(tc.port)
		if diff := cmp.Diff(tc.want, errString(err)); diff != "" {
			t.Errorf("claim(%d) (-want +got):\n%s", tc.port, diff)
		}
	}
	if p.free != 3 {
		t.Errorf("%d pairs free, want 3", p.free)
	}
	// The claimed pair is not handed out.
	if diff := cmp.Diff([]uint16{30002, 30006, 30008}, takeAll(p)); diff != "" {
		t.Errorf("taken after the claim (-want +got):\n%s", diff)
	}
	p.release(30004)
	if err := p.claim(30004); err != nil {
		t.Errorf("claim after release: %v", err)
	}
}
