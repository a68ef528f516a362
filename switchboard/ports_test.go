package switchboard

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// takeAll takes pairs until p runs out.
func takeAll(p *ports) []uint16 {
	var got []uint16
	for {
		port, ok := p.take()
		if !ok {
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

func TestPortsGoRoundTheRangeBeforeReusingAPair(t *testing.T) {
	t.Parallel()
	p := newPorts(PortRange{30000, 30007}) // 30000 30002 30004 30006
	first, _ := p.take()
	second, _ := p.take()
	p.release(first)
	// A released pair is the last to serve again: the search goes on from
	// where it stopped.
	var got []uint16
	for range 3 {
		port, _ := p.take()
		got = append(got, port)
	}
	if diff := cmp.Diff([]uint16{30004, 30006, 30000}, got); diff != "" {
		t.Errorf("after releasing %d (-want +got):\n%s", first, diff)
	}
	p.release(30004)
	p.release(second)
	got = takeAll(p)
	if diff := cmp.Diff([]uint16{30002, 30004}, got); diff != "" {
		t.Errorf("released pairs come back in range order from the last taken (-want +got):\n%s", diff)
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
	if diff := cmp.Diff([]uint16{30002, 30000}, takeAll(p)); diff != "" {
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
	// Round robin skips the claimed pair.
	if diff := cmp.Diff([]uint16{30002, 30006, 30008}, takeAll(p)); diff != "" {
		t.Errorf("taken after the claim (-want +got):\n%s", diff)
	}
	p.release(30004)
	if err := p.claim(30004); err != nil {
		t.Errorf("claim after release: %v", err)
	}
}
